"""Fault injection for testing Spark's task retry: fail the first attempt of each task."""

from __future__ import annotations

from pyspark import TaskContext


class InjectedFault(RuntimeError):
    """Raised on purpose by a first task attempt (see config spark.fail_first_attempt)."""


def fail_first_attempt(stage: str) -> None:
    """Call inside a task: raises on attempt 0 so that the retried attempt must do the work."""
    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() == 0:
        raise InjectedFault(f"injected failure in stage {stage!r} (first attempt)")
