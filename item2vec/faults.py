"""Fault injection for testing Spark's task retry: fail the first attempt of each task.

Reached only through the job's ``wrap`` seam (item2vec.train.Wrap): tests run the job with
``tests/faulty_run.py``, which passes ``first_attempt_fails(...)``; the job itself always runs
with the identity.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql import DataFrame

from item2vec.train import Wrap


class InjectedFault(RuntimeError):
    """Raised on purpose by a first task attempt."""


def fail_first_attempt(stage: str) -> None:
    """Call inside a task: raises on attempt 0 so that the retried attempt must do the work."""
    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() == 0:
        raise InjectedFault(f"injected failure in stage {stage!r} (first attempt)")


def first_attempt_fails(*stages: str) -> Wrap:
    """A wrap whose tasks fail on their first attempt in the named stages ("corpus",
    "similar"): the rows pass through a Python task that raises before yielding."""
    def wrap(stage: str, df: DataFrame) -> DataFrame:
        if stage not in stages:
            return df

        def passthrough(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            fail_first_attempt(stage)
            yield from batches

        return df.mapInArrow(passthrough, df.schema)

    return wrap
