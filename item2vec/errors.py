"""Errors a user can act on, each carrying the job's exit code (see CONTRACT.md)."""

from __future__ import annotations


class Item2VecError(Exception):
    """Base class: a one-line message for stderr plus the exit status to use."""

    exit_code = 1


class BadInput(Item2VecError):
    """Bad input data, bad config or a bad command line: nothing is published."""

    exit_code = 2


class QualityGateFailed(Item2VecError):
    """The evaluation did not pass the configured gate: the run is kept, not published."""

    exit_code = 3


class PublishConflict(Item2VecError):
    """Another run holds the output's lock: this run stops without touching the output."""

    exit_code = 1
