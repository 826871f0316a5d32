"""Read the event log and bring it to canonical columns; tag and count rejected rows.

Ids are never altered: CSV columns are read as text (no schema inference, which turned ``00123``
into ``123`` and changed an id's type from one night to the next) and only cast when
``id_type = "long"`` asks for it; Parquet keeps its types. Times may be timestamps, dates,
integer or fractional epoch seconds/milliseconds, or ISO-8601 text; everything is parsed with
Spark built-ins, so the log is never touched by Python.

Rows that cannot be used (null ids, values that do not parse, implausible or future times,
filtered event types) are dropped and counted by reason, because one bad row must not fail a
nightly run. Problems that make the whole input unusable (missing columns, wrong types, no value
that parses) raise BadInput instead. The counts come from the same pass over the log that builds
the sessions (``accept``), and a date-partitioned log is pruned to the lookback window before
anything is read (``open_events``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from item2vec.errors import BadInput

USER, ITEM, TIME, EVENT_TYPE = "user_id", "item_id", "timestamp", "event_type"
REJECT = "_reject"
# Set by canonical_events when a value is present but does not parse: the first such reason
# (user, item, time order) and the raw value as text (an example for the error message).
UNPARSED, UNPARSED_VALUE = "_unparsed", "_unparsed_value"
# Every rejection reason, in the order they are tested: a row counts under the first that applies.
REASONS = ("null_user", "unparseable_user", "null_item", "unparseable_item", "null_time",
           "unparseable_time", "implausible_time", "after_run_date", "before_lookback",
           "event_type_filtered")
PARSE_REASONS = ("unparseable_user", "unparseable_item", "unparseable_time")
# Times outside this range are corrupt or in the wrong unit (e.g. milliseconds read as seconds).
PLAUSIBLE_FROM = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
PLAUSIBLE_TO = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

_EPOCH_LIMIT_S = 10**12  # ~ year 33658: beyond it seconds would overflow microsecond timestamps
_INT_TYPES = (T.IntegerType, T.LongType, T.ShortType, T.ByteType)
_ID_TYPES = (T.StringType, *_INT_TYPES)
_CSV_NAME = re.compile(r"\.csv(?:\.(?:gz|bz2|deflate|lz4|snappy|zst))?$", re.IGNORECASE)
# ISO-8601 text: date, optional time (seconds and fraction optional), optional zone: Z, an
# offset, or a zone name after a space (2026-11-25 10:00:00 Europe/Berlin). Java regex syntax.
_ISO = (r"^\s*(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?)?\s*"
        r"(Z|[+-]\d{2}(?::?\d{2})?|[A-Za-z][A-Za-z0-9_/+:-]*)?\s*$")
_NUMBER = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_LISTING_CHUNK = 5000  # file statuses per gateway call when reading a listing


# -- listing, format, fingerprint -----------------------------------------------------------
@dataclass(frozen=True, order=True)
class InputFile:
    """One data file of the input: path relative to the input root ("" when the input is this
    file), bytes, mtime (epoch ms)."""

    path: str
    size: int
    mtime: int


def list_input(spark: SparkSession, path: str) -> list[InputFile]:
    """Every data file under ``path`` from ONE recursive listing, skipping what Spark skips
    (``_*``, ``.*``, ``*._COPYING_``); a file ``path`` lists as itself (relative path "").

    Hadoop's ``listFiles(recursive)`` costs a request per directory page (a flat key listing on
    object stores), not one per file. Local paths are walked directly: Hadoop's local file system
    forks a process per file for the permissions of a LocatedFileStatus (~5 ms a file).
    """
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(hpath):
            raise BadInput(f"input path does not exist: {path}")
        root = fs.makeQualified(hpath)
        if root.toUri().getScheme() == "file":
            entries = _list_local(root.toUri().getPath())
        else:
            entries = _list_hadoop(jvm, fs, root)
    except BadInput:
        raise
    except Exception as exc:  # permissions, unreachable store, bad URI ...
        raise BadInput(f"cannot list input {path!r}: {_reason(exc)}") from None
    return sorted(InputFile(*e) for e in entries)


def _list_hadoop(jvm: Any, fs: Any, root: Any) -> list[tuple[str, int, int]]:
    """(path relative to root, bytes, mtime ms) of the data files, through Hadoop."""
    base = root.toString().rstrip("/")
    statuses = jvm.org.apache.hadoop.util.functional.RemoteIterators.toList(
        fs.listFiles(root, True))
    out = []
    for full, size, mtime in _statuses(statuses):
        if full == base:
            return [("", size, mtime)]
        rel = full[len(base) + 1:] if full.startswith(base + "/") else full.rsplit("/", 1)[-1]
        if not _hidden(rel):
            out.append((rel, size, mtime))
    return out


def _list_local(root: str) -> list[tuple[str, int, int]]:
    """The same for a directory (or file) on this machine, without the JVM."""
    if not os.path.isdir(root):
        st = os.stat(root)
        return [("", st.st_size, st.st_mtime_ns // 1_000_000)]
    out = []
    for here, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        for name in names:
            full = os.path.join(here, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if not _hidden(rel):
                st = os.stat(full)
                out.append((rel, st.st_size, st.st_mtime_ns // 1_000_000))
    return out


def _statuses(statuses: Any) -> list[tuple[str, int, int]]:
    """(path, length, mtime) of a Java list of FileStatus. Reading each field is a gateway round
    trip (~0.1-1 ms), too slow for 10^5 files, so the list is read as text in chunks of
    FileStatus.toString(); if that text does not parse to the expected count, field by field."""
    size = statuses.size()
    out: list[tuple[str, int, int]] = []
    pattern = re.compile(r"\{path=(.*?); isDirectory=false; length=(\d+);[^{}]*?"
                         r"modification_time=(-?\d+);")
    for start in range(0, size, _LISTING_CHUNK):
        end = min(size, start + _LISTING_CHUNK)
        chunk = pattern.findall(statuses.subList(start, end).toString())
        if len(chunk) != end - start:
            return [(s.getPath().toString(), int(s.getLen()), int(s.getModificationTime()))
                    for s in (statuses.get(i) for i in range(size))]
        out += [(p, int(n), int(m)) for p, n, m in chunk]
    return out


def _hidden(rel: str) -> bool:
    """Spark's rule for files and directories a file source ignores."""
    return any((part.startswith("_") and "=" not in part) or part.startswith(".")
               or part.endswith("._COPYING_") for part in rel.split("/"))


def detect_format(path: str, files: Iterable[InputFile]) -> str:
    """"csv" for a .csv path or a directory whose data files are all .csv, else "parquet"."""
    if _CSV_NAME.search(path.rstrip("/")):
        return "csv"
    names = [f.path for f in files if f.path]
    return "csv" if names and all(_CSV_NAME.search(n) for n in names) else "parquet"


def fingerprint(files: Iterable[InputFile]) -> str:
    """Hash of the (relative path, size, mtime) of the files a run reads: no data is read, and
    the same files moved under another root keep their fingerprint."""
    entries = sorted([f.path, f.size, f.mtime] for f in files)
    return "sha256:" + hashlib.sha256(json.dumps(entries).encode()).hexdigest()


# -- reading --------------------------------------------------------------------------------
def read_events(spark: SparkSession, path: str, *, fmt: str,
                header_file: str | None = None) -> DataFrame:
    """Open a Parquet or CSV (with header) file or directory. ``fmt`` is auto, parquet or csv.

    CSV columns are all strings: one header line is read (from ``header_file`` when given, a
    file the run reads anyway) and nothing is inferred, so ids and times reach
    canonical_events exactly as written.
    """
    if fmt == "auto":
        fmt = detect_format(path, list_input(spark, path))
    try:
        if fmt == "csv":
            csv = spark.read.option("header", True).option("inferSchema", False)
            if header_file is not None:
                csv = csv.schema(csv.csv(header_file).schema)
            return csv.csv(path)
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


def window_days(run_end: dt.datetime, lookback_days: int) -> tuple[dt.date | None, dt.date]:
    """The UTC days that can hold accepted events: (first day or None for no lower bound,
    the run date). Events at or after ``run_end`` are never accepted."""
    end = run_end if run_end.tzinfo else run_end.replace(tzinfo=dt.UTC)
    last = (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date()
    if not lookback_days:
        return None, last
    return (end - dt.timedelta(days=lookback_days)).astimezone(dt.UTC).date(), last


def prune_partitions(raw: DataFrame, files: list[InputFile], *, partition_col: str,
                     first_day: dt.date | None, last_day: dt.date
                     ) -> tuple[DataFrame, list[InputFile], int]:
    """Keep only the ``partition_col=YYYY-MM-DD`` directories in [first_day, last_day].

    The filter is on the partition column alone, so Spark drops whole directories before
    reading (PartitionFilters) and the rows inside still go through the exact time filters.
    Returns (events, files read, partition values skipped). Values that are not dates (and
    ``__HIVE_DEFAULT_PARTITION__``) are kept; input without such directories is unchanged.
    """
    name = next((c for c in raw.columns if c.lower() == partition_col.lower()), None)
    partitioned = any(_partition_value(f.path, partition_col) is not None for f in files)
    if not partition_col or name is None or not partitioned:
        return raw, files, 0
    col = F.col(name)
    kind = raw.schema[name].dataType
    if isinstance(kind, T.DateType):
        day = col
    elif isinstance(kind, T.StringType):
        day = F.when(col.rlike(r"^\d{4}-\d{2}-\d{2}$"), col.try_cast("date"))
    else:  # e.g. dt=20261125 read as an integer: not a date we can compare
        return raw, files, 0
    inside = day <= F.lit(last_day)
    if first_day is not None:
        inside = inside & (day >= F.lit(first_day))
    kept, skipped = files_in_window(files, partition_col=partition_col, first_day=first_day,
                                    last_day=last_day)
    return raw.where(day.isNull() | inside), kept, skipped


def files_in_window(files: list[InputFile], *, partition_col: str, first_day: dt.date | None,
                    last_day: dt.date) -> tuple[list[InputFile], int]:
    """The files Spark reads once prune_partitions' filter applies, and how many partition
    values it skips: the same rule, on the listing."""
    kept, skipped = [], set()
    for f in files:
        value = _day(_partition_value(f.path, partition_col)) if partition_col else None
        if value is not None and (value > last_day or (first_day and value < first_day)):
            skipped.add(value)
        else:
            kept.append(f)
    return kept, len(skipped)


def _partition_value(rel: str, partition_col: str) -> str | None:
    for part in rel.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key.lower() == partition_col.lower():
            return unquote(value)
    return None


def _day(value: str | None) -> dt.date | None:
    """The partition value as a date when Spark would read it as one (YYYY-MM-DD, valid)."""
    if value is None or not _DAY.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def open_events(spark: SparkSession, path: str, *, fmt: str, user_col: str, item_col: str,
                time_col: str, event_type_col: str, event_types: tuple[str, ...], id_type: str,
                time_unit: str, time_zone: str, partition_col: str, run_end: dt.datetime,
                lookback_days: int) -> tuple[DataFrame, dict[str, Any]]:
    """Canonical events of the input (see canonical_events) and a description of what is read:
    {path, format, fingerprint, files_read, bytes_read, partitions_pruned}.

    The input is listed once; that listing picks the format ("auto"), decides which date
    partitions are read and gives the fingerprint. Only schemas are resolved: no data is read.
    """
    files = list_input(spark, path)
    fmt = detect_format(path, files) if fmt == "auto" else fmt
    first_day, last_day = window_days(run_end, lookback_days)
    inside, _ = files_in_window(files, partition_col=partition_col, first_day=first_day,
                                last_day=last_day)
    if files and not inside:
        raise BadInput(f"no {partition_col}=YYYY-MM-DD partition of {path} is within the "
                       f"lookback window {first_day or 'start'}..{last_day} (input.lookback_days"
                       f"={lookback_days}, --run-date {last_day})")
    header = None
    if fmt == "csv" and inside:  # never open a file outside the window, not even its header
        header = path if not inside[0].path else f"{path.rstrip('/')}/{inside[0].path}"
    raw = read_events(spark, path, fmt=fmt, header_file=header)
    raw, read, pruned = prune_partitions(raw, files, partition_col=partition_col,
                                         first_day=first_day, last_day=last_day)
    events = canonical_events(raw, user_col=user_col, item_col=item_col, time_col=time_col,
                              event_type_col=event_type_col, event_types=event_types,
                              id_type=id_type if fmt == "csv" else "string",
                              time_unit=time_unit, time_zone=time_zone)
    return events, {"path": path, "format": fmt, "fingerprint": fingerprint(read),
                    "files_read": len(read), "bytes_read": sum(f.size for f in read),
                    "partitions_pruned": pruned}


# -- canonical columns ----------------------------------------------------------------------
def canonical_events(raw: DataFrame, *, user_col: str, item_col: str, time_col: str,
                     event_type_col: str, event_types: tuple[str, ...], id_type: str,
                     time_unit: str, time_zone: str) -> DataFrame:
    """Rename the configured columns to user_id, item_id, timestamp[, event_type] and convert.

    - ids keep their type; string ids become 64-bit integers when ``id_type == "long"``.
    - ``timestamp``: timestamps as they are; dates, zone-less timestamps and zone-less ISO text
      in ``time_zone``; numbers (integer, fractional, or numeric text) as epoch seconds or
      milliseconds (``time_unit``); ISO-8601 text with its own zone.
    A present value that does not parse becomes null and is marked in ``_unparsed`` (with the
    raw text in ``_unparsed_value``) for tag_rejections to count. Only the schema is inspected
    here: no Spark job runs.
    """
    fields = {f.name: f.dataType for f in raw.schema.fields}
    available = ", ".join(fields) or "none"
    for key, name in (("user_col", user_col), ("item_col", item_col), ("time_col", time_col)):
        if name not in fields:
            raise BadInput(f"input column {name!r} (input.{key}) not found; available: {available}")
    for key, name in (("user_col", user_col), ("item_col", item_col)):
        if not isinstance(fields[name], _ID_TYPES):
            raise BadInput(f"input column {name!r} (input.{key}) has type "
                           f"{fields[name].simpleString()}; expected string or integer")
    user, user_bad = _id(user_col, fields[user_col], id_type)
    item, item_bad = _id(item_col, fields[item_col], id_type)
    ts, time_bad = _time(time_col, fields[time_col], time_unit=time_unit, time_zone=time_zone)
    cols = [user.alias(USER), item.alias(ITEM), ts.alias(TIME)]
    if event_type_col and event_type_col in fields:
        cols.append(F.col(event_type_col).cast("string").alias(EVENT_TYPE))
    elif event_types:
        raise BadInput(f"input.event_types is set but the event-type column "
                       f"{event_type_col!r} (input.event_type_col) is missing; "
                       f"available: {available}")
    checks = [(reason, bad, name) for reason, bad, name in (
        ("unparseable_user", user_bad, user_col), ("unparseable_item", item_bad, item_col),
        ("unparseable_time", time_bad, time_col)) if bad is not None]
    if checks:
        reason = value = F.lit(None).cast("string")
        for why, bad, name in reversed(checks):
            reason = F.when(bad, F.lit(why)).otherwise(reason)
            value = F.when(bad, F.col(name).cast("string")).otherwise(value)
        cols += [reason.alias(UNPARSED), value.alias(UNPARSED_VALUE)]
    return raw.select(*cols)


def _id(name: str, kind: T.DataType, id_type: str) -> tuple[Column, Column | None]:
    col = F.col(name)
    if id_type != "long" or not isinstance(kind, T.StringType):
        return col, None
    value = col.try_cast("long")
    return value, value.isNull() & ~_blank_text(col)


def _time(name: str, kind: T.DataType, *, time_unit: str,
          time_zone: str) -> tuple[Column, Column | None]:
    """(timestamp column, "present but unparseable" column or None when nothing can fail)."""
    col = F.col(name)
    scale = 1_000_000 if time_unit == "s" else 1_000  # microseconds per unit
    limit = _EPOCH_LIMIT_S * (1 if time_unit == "s" else 1000)
    if isinstance(kind, T.TimestampType):
        return col, None
    if isinstance(kind, T.TimestampNTZType | T.DateType):  # wall clock in time_zone
        ts = _parse_iso(col.cast("string"), time_zone)
        return ts, col.isNotNull() & ts.isNull()
    if isinstance(kind, _INT_TYPES):
        convert = F.timestamp_seconds if time_unit == "s" else F.timestamp_millis
        raw = col.cast("long")
        return _bounded(raw, convert(raw), limit), None
    if isinstance(kind, T.FloatType | T.DoubleType):
        x = col.cast("double")
        bad = F.isnan(x)
        # Round, not truncate: 1396437466.94 is stored as 1396437466.93999...
        ts = F.timestamp_micros(F.round(x * scale).cast("long"))
        return F.when(~bad, _bounded(x, ts, limit)), col.isNotNull() & bad
    if isinstance(kind, T.DecimalType):
        return _from_decimal(col, scale, limit), None
    if isinstance(kind, T.StringType):
        ts = F.when(col.rlike(_NUMBER), _from_decimal(col, scale, limit)).otherwise(
            _parse_iso(col, time_zone))
        return ts, ts.isNull() & ~_blank_text(col)
    unit = "seconds" if time_unit == "s" else "milliseconds"
    raise BadInput(f"input column {name!r} (input.time_col) has type {kind.simpleString()}; "
                   f"expected a timestamp, epoch {unit} (integer or fractional) or ISO-8601 text")


def _bounded(x: Column, ts: Column, limit: int) -> Column:
    """``ts`` where the epoch value ``x`` is within +-limit; beyond it "far future" (tagged
    implausible_time: the value is a number, only not a time); null stays null. The bound also
    keeps the conversion from overflowing, which would fail the job."""
    return F.when(F.abs(x) < limit, ts).when(x.isNotNull(), F.lit(PLAUSIBLE_TO))


def _from_decimal(number: Column, scale: int, limit: int) -> Column:
    """Exact decimal (or numeric text) epoch to a timestamp; too many digits = out of range."""
    d = number.try_cast("decimal(38,9)")
    ts = _bounded(d, F.timestamp_micros(F.floor(d * scale).cast("long")), limit)
    return F.when(number.isNotNull(), F.coalesce(ts, F.lit(PLAUSIBLE_TO)))


def _parse_iso(text: Column, time_zone: str) -> Column:
    """ISO-8601 text to a timestamp; null when it is not ISO-8601 or not a valid time.

    Text without a zone gets ``time_zone`` written after it (and missing seconds ":00", which
    Spark's cast needs before a zone), so the session's time zone never changes the result.
    """
    part = [F.regexp_extract(text, _ISO, i) for i in range(1, 5)]
    date, hm, sec, zone = part
    clock = F.concat(F.when(hm == "", "00:00").otherwise(hm), F.when(sec == "", ":00")
                     .otherwise(sec))
    zone = F.when(zone == "", F.lit(time_zone)).otherwise(zone)
    stamp = F.concat(date, F.lit(" "), clock, F.lit(" "), zone).try_cast("timestamp")
    return F.when(date != "", stamp)


def _blank_text(col: Column) -> Column:
    # Whitespace-only text (tabs, newlines, no-break spaces too; F.trim strips only ' ').
    return col.isNull() | col.rlike(r"(?U)^\s*$")


# -- rejections -----------------------------------------------------------------------------
def tag_rejections(events: DataFrame, *, run_end: dt.datetime, lookback_days: int,
                   event_types: tuple[str, ...]) -> DataFrame:
    """Add a ``_reject`` column: null for usable rows, else the first reason (REASONS order)."""
    has_unparsed = UNPARSED in events.columns

    def unparsed(reason: str) -> Column:
        return F.coalesce(F.col(UNPARSED) == reason, F.lit(False))

    def missing(name: str, col: Column) -> Column:
        if not has_unparsed:
            return col
        return col & ~unparsed(f"unparseable_{name}")

    reasons: list[tuple[str, Column]] = [
        ("null_user", missing("user", _blank(USER, events))),
        ("unparseable_user", unparsed("unparseable_user")),
        ("null_item", missing("item", _blank(ITEM, events))),
        ("unparseable_item", unparsed("unparseable_item")),
        ("null_time", missing("time", F.col(TIME).isNull())),
        ("unparseable_time", unparsed("unparseable_time")),
        ("implausible_time", (F.col(TIME) < F.lit(PLAUSIBLE_FROM))
         | (F.col(TIME) >= F.lit(PLAUSIBLE_TO))),
        ("after_run_date", F.col(TIME) >= F.lit(run_end)),
    ]
    if not has_unparsed:
        reasons = [(r, c) for r, c in reasons if r not in PARSE_REASONS]
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
    if isinstance(events.schema[name].dataType, T.StringType):
        return _blank_text(F.col(name))
    return F.col(name).isNull()


class Tally(NamedTuple):
    """Rows read, rows rejected by reason (zeros left out), and one raw value per parse reason
    (the smallest, so that it is the same in every run) for error messages."""

    read: int
    rejected: dict[str, int]
    examples: dict[str, str]


def _metrics(tagged: DataFrame) -> list[Column]:
    aggs = [F.count(F.lit(1)).alias("rows")]
    aggs += [F.count_if(F.col(REJECT) == reason).alias(reason) for reason in REASONS]
    if UNPARSED_VALUE in tagged.columns:
        aggs += [F.min(F.when(F.col(REJECT) == reason, F.col(UNPARSED_VALUE))).alias(f"e_{reason}")
                 for reason in PARSE_REASONS]
    return aggs


def _tally(row: dict[str, Any]) -> Tally:
    rejected = {r: int(row[r]) for r in REASONS if row.get(r)}
    examples = {r: row[f"e_{r}"] for r in PARSE_REASONS if row.get(f"e_{r}") is not None}
    return Tally(int(row["rows"]), rejected, examples)


def accept(tagged: DataFrame) -> tuple[DataFrame, Callable[[], Tally]]:
    """The usable rows, and a function giving their Tally once an action has run on them.

    The counts are observed (``DataFrame.observe``) while the first action that consumes the
    accepted rows reads the log, e.g. materialising the sessions, so the log is read once for
    both. That action must read the whole log (count, write, aggregate: not ``limit``/``first``).
    Calling the function before such an action raises RuntimeError instead of waiting forever.
    The counts are accumulators: a map stage re-run after a lost executor may count twice.
    """
    observation = Observation()
    observed = tagged.observe(observation, *_metrics(tagged))
    rows = observed.where(F.col(REJECT).isNull()).select(USER, ITEM, TIME)

    def tally() -> Tally:
        java = getattr(observation, "_jo", None)
        if java is not None:
            if not java.future().isCompleted():
                raise RuntimeError("rejection counts are known only after an action has read "
                                   "the accepted events (e.g. counting the sessions)")
            if java.getRow().length() == 0:
                # Adaptive execution replaced the plan above a stage that came out empty (no
                # accepted rows, or no sessions), observed part included: count in a pass of
                # its own. Such a run stops with BadInput anyway.
                return _tally(tagged.agg(*_metrics(tagged)).first().asDict())
        return _tally(observation.get)

    return rows, tally


def count_rejections(tagged: DataFrame) -> tuple[int, dict[str, int]]:
    """(rows read, {reason: rows rejected}) as an action of its own: a full pass over the log.
    A run uses ``accept`` instead, which counts during the pass that builds the sessions."""
    tally = _tally(tagged.agg(*_metrics(tagged)).first().asDict())
    return tally.read, tally.rejected


def accepted(tagged: DataFrame) -> DataFrame:
    """The usable rows, canonical columns only (no counting: evaluate and tune jobs)."""
    return tagged.where(F.col(REJECT).isNull()).select(USER, ITEM, TIME)


def check_usable(events_read: int, rejected: dict[str, int], *, time_unit: str,
                 examples: dict[str, str] | None = None) -> None:
    """Fail with a reason when nothing (or nothing plausible) is left to learn from."""
    if events_read == 0:
        raise BadInput("input has no rows")
    if sum(rejected.values()) < events_read:
        return
    examples = examples or {}

    def example(reason: str) -> str:
        return f" (e.g. {examples[reason]!r})" if reason in examples else ""

    if rejected.get("implausible_time", 0) == events_read:
        hint = ("values look like milliseconds: set input.time_unit = \"ms\"" if time_unit == "s"
                else "check input.time_unit")
        raise BadInput(f"every timestamp is outside 1990..2200; {hint}")
    if rejected.get("unparseable_time", 0) == events_read:
        raise BadInput(f"no value of the time column (input.time_col) could be read as a time"
                       f"{example('unparseable_time')}; expected a timestamp, epoch "
                       f"{'seconds' if time_unit == 's' else 'milliseconds'} or ISO-8601 text "
                       f"such as 2026-11-25T10:00:00Z")
    for who in ("user", "item"):
        if rejected.get(f"unparseable_{who}", 0) == events_read:
            raise BadInput(f"no {who} id (input.{who}_col) is an integer"
                           f"{example(f'unparseable_{who}')}; set input.id_type = \"string\"")
    detail = ", ".join(f"{k}={v}" for k, v in sorted(rejected.items()))
    raise BadInput(f"no usable events: all {events_read} rows rejected ({detail})")
