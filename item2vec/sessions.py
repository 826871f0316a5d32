"""Sessionise events per user with window functions: gap split, repeat dedupe, length bounds.

Everything runs in the JVM (no Python UDFs) and is partitioned by user, so the cost is one
shuffle of the event log whatever its size; only a single huge user can skew a task.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from item2vec.events import ITEM, TIME, USER

SESSION_ID, START, END, ITEMS = "session_id", "start", "end", "items"


def sessionize(events: DataFrame, *, gap_minutes: float, dedupe_consecutive: bool,
               min_length: int, max_length: int, long_policy: str) -> DataFrame:
    """Events (user_id, item_id, timestamp) -> sessions (user_id, session_id, start, end, items).

    Events are ordered by time, ties by item id, so the result does not depend on input order.
    A new session starts when the gap to the user's previous event exceeds ``gap_minutes``.
    Consecutive repeats of an item within a session are dropped when ``dedupe_consecutive``.
    Sessions longer than ``max_length`` are split into chunks ("split") or cut ("truncate");
    then sessions shorter than ``min_length`` are dropped. ``session_id`` is a stable hash of
    (user, session number, chunk).
    """
    by_user = Window.partitionBy(USER).orderBy(TIME, ITEM)
    gap_us = int(gap_minutes * 60 * 1_000_000)
    prev_ts = F.lag(TIME).over(by_user)
    starts = prev_ts.isNull() | (F.unix_micros(F.col(TIME)) - F.unix_micros(prev_ts) > gap_us)
    ev = (events.withColumn("_new", starts.cast("int"))
          .withColumn("_prev_item", F.lag(ITEM).over(by_user))
          .withColumn("_sess", F.sum("_new").over(
              by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow))))
    if dedupe_consecutive:
        ev = ev.where((F.col("_new") == 1) | ~F.col(ITEM).eqNullSafe(F.col("_prev_item")))
    by_session = Window.partitionBy(USER, "_sess").orderBy(TIME, ITEM)
    ev = ev.withColumn("_pos", F.row_number().over(by_session) - 1)
    ev = ev.withColumn("_chunk", F.floor(F.col("_pos") / max_length).cast("int"))
    if long_policy == "truncate":
        ev = ev.where(F.col("_chunk") == 0)
    grouped = ev.groupBy(USER, "_sess", "_chunk").agg(
        F.sort_array(F.collect_list(F.struct("_pos", ITEM))).alias("_evs"),
        F.min(TIME).alias(START), F.max(TIME).alias(END))
    return (grouped
            .withColumn(ITEMS, F.transform("_evs", lambda e: e[ITEM]))
            .where(F.size(ITEMS) >= min_length)
            .select(USER, F.xxhash64(USER, "_sess", "_chunk").alias(SESSION_ID), START, END, ITEMS))


def session_stats(sessions: DataFrame) -> tuple[int, int]:
    """(sessions, tokens) in one pass."""
    row = sessions.agg(F.count(F.lit(1)).alias("n"), F.sum(F.size(ITEMS)).alias("t")).first()
    return int(row["n"]), int(row["t"] or 0)
