"""Read the event log and bring it to canonical columns; tag and count rejected rows.

Rows that cannot be used (null ids, implausible or future times, filtered event types) are
dropped and counted by reason, because one bad row must not fail a nightly run. Problems that
make the whole input unusable (missing columns, wrong types) raise BadInput instead.
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from item2vec.config import InputConfig
from item2vec.errors import BadInput

USER, ITEM, TIME, EVENT_TYPE = "user_id", "item_id", "timestamp", "event_type"
REJECT = "_reject"
# Times outside this range are corrupt or in the wrong unit (e.g. milliseconds read as seconds).
PLAUSIBLE_FROM = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
PLAUSIBLE_TO = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

_EPOCH_LIMIT_S = 10**12  # ~ year 33658: beyond it seconds would overflow microsecond timestamps
_ID_TYPES = (T.StringType, T.IntegerType, T.LongType, T.ShortType, T.ByteType)
_INT_TYPES = (T.IntegerType, T.LongType, T.ShortType, T.ByteType)


def read_events(spark: SparkSession, path: str, *, fmt: str) -> DataFrame:
    """Open a Parquet or CSV (with header) file or directory. ``fmt`` is auto, parquet or csv."""
    if fmt == "auto":
        fmt = "csv" if _looks_like_csv(spark, path) else "parquet"
    try:
        if fmt == "csv":
            return spark.read.option("header", True).option("inferSchema", True).csv(path)
        return spark.read.parquet(path)
    except Exception as exc:  # AnalysisException and friends: path missing, not Parquet, ...
        raise BadInput(f"cannot read input {path!r} as {fmt}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The first informative line of an error; py4j's starts with 'An error occurred while
    calling o123.parquet.' and names the real problem (and its Java class) only after it."""
    lines = [ln.strip().lstrip(":").strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("An error occurred while calling")]
    if not lines:
        return type(exc).__name__
    return re.sub(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): ", "", lines[0])


def _looks_like_csv(spark: SparkSession, path: str) -> bool:
    if path.lower().endswith((".csv", ".csv.gz")):
        return True
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        raise BadInput(f"input path does not exist: {path}")
    if not fs.getFileStatus(hpath).isDirectory():
        return False
    names = [s.getPath().getName().lower() for s in fs.listStatus(hpath)]
    data = [n for n in names if not n.startswith(("_", "."))]
    return bool(data) and all(n.endswith((".csv", ".csv.gz")) for n in data)


def canonical_events(raw: DataFrame, cfg: InputConfig) -> DataFrame:
    """Rename configured columns to user_id, item_id, timestamp[, event_type]; check their types.

    Integer time columns are epoch seconds (or milliseconds with ``time_unit = "ms"``).
    Only the schema is inspected here: no Spark job runs.
    """
    fields = {f.name: f.dataType for f in raw.schema.fields}
    available = ", ".join(fields) or "none"
    for key, name in (("user_col", cfg.user_col), ("item_col", cfg.item_col),
                      ("time_col", cfg.time_col)):
        if name not in fields:
            raise BadInput(f"input column {name!r} (input.{key}) not found; available: {available}")
    for key, name in (("user_col", cfg.user_col), ("item_col", cfg.item_col)):
        if not isinstance(fields[name], _ID_TYPES):
            raise BadInput(f"input column {name!r} (input.{key}) has type "
                           f"{fields[name].simpleString()}; expected string or integer")
    time_type = fields[cfg.time_col]
    if isinstance(time_type, T.TimestampType | T.TimestampNTZType | T.DateType):
        ts = F.col(cfg.time_col).cast(T.TimestampType())
    elif isinstance(time_type, _INT_TYPES):
        convert = F.timestamp_seconds if cfg.time_unit == "s" else F.timestamp_millis
        raw_time = F.col(cfg.time_col).cast("long")
        # Values that would overflow a timestamp become "far future" and are tagged implausible.
        limit = _EPOCH_LIMIT_S * (1 if cfg.time_unit == "s" else 1000)
        ts = F.when(F.abs(raw_time) < limit, convert(raw_time)).otherwise(F.lit(PLAUSIBLE_TO))
    else:
        raise BadInput(f"input column {cfg.time_col!r} (input.time_col) has type "
                       f"{time_type.simpleString()}; expected timestamp or integer epoch "
                       f"{'seconds' if cfg.time_unit == 's' else 'milliseconds'}")
    cols = [F.col(cfg.user_col).alias(USER), F.col(cfg.item_col).alias(ITEM), ts.alias(TIME)]
    if cfg.event_type_col and cfg.event_type_col in fields:
        cols.append(F.col(cfg.event_type_col).cast("string").alias(EVENT_TYPE))
    elif cfg.event_types:
        raise BadInput(f"input.event_types is set but the event-type column "
                       f"{cfg.event_type_col!r} (input.event_type_col) is missing; "
                       f"available: {available}")
    return raw.select(*cols)


def tag_rejections(events: DataFrame, *, run_end: dt.datetime, lookback_days: int,
                   event_types: tuple[str, ...]) -> DataFrame:
    """Add a ``_reject`` column: null for usable rows, else the first reason that applies."""
    reasons: list[tuple[str, Column]] = [
        ("null_user", _blank(USER, events)),
        ("null_item", _blank(ITEM, events)),
        ("null_time", F.col(TIME).isNull()),
        ("implausible_time", (F.col(TIME) < F.lit(PLAUSIBLE_FROM))
         | (F.col(TIME) >= F.lit(PLAUSIBLE_TO))),
        ("after_run_date", F.col(TIME) >= F.lit(run_end)),
    ]
    if lookback_days:
        start = run_end - dt.timedelta(days=lookback_days)
        reasons.append(("before_lookback", F.col(TIME) < F.lit(start)))
    if event_types:
        allowed = F.col(EVENT_TYPE).isin(list(event_types))
        reasons.append(("event_type_filtered", F.coalesce(~allowed, F.lit(True))))
    tag = F.lit(None).cast("string")
    for reason, cond in reversed(reasons):
        tag = F.when(cond, F.lit(reason)).otherwise(tag)
    return events.withColumn(REJECT, tag)


def _blank(name: str, events: DataFrame) -> Column:
    col = F.col(name)
    if isinstance(events.schema[name].dataType, T.StringType):
        # Whitespace-only ids (tabs, newlines, no-break spaces too; F.trim strips only ' ').
        return col.isNull() | col.rlike(r"(?U)^\s*$")
    return col.isNull()


def count_rejections(tagged: DataFrame) -> tuple[int, dict[str, int]]:
    """One pass over the log: (rows read, {reason: rows rejected})."""
    rows = tagged.groupBy(REJECT).count().collect()
    total = sum(r["count"] for r in rows)
    return total, {r[REJECT]: r["count"] for r in rows if r[REJECT] is not None}


def accepted(tagged: DataFrame) -> DataFrame:
    """The usable rows, canonical columns only."""
    return tagged.where(F.col(REJECT).isNull()).select(USER, ITEM, TIME)


def check_usable(events_read: int, rejected: dict[str, int], *, time_unit: str) -> None:
    """Fail with a reason when nothing (or nothing plausible) is left to learn from."""
    if events_read == 0:
        raise BadInput("input has no rows")
    if sum(rejected.values()) < events_read:
        return
    if rejected.get("implausible_time", 0) == events_read:
        hint = ("values look like milliseconds: set input.time_unit = \"ms\"" if time_unit == "s"
                else "check input.time_unit")
        raise BadInput(f"every timestamp is outside 1990..2200; {hint}")
    detail = ", ".join(f"{k}={v}" for k, v in sorted(rejected.items()))
    raise BadInput(f"no usable events: all {events_read} rows rejected ({detail})")
