import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from item2vec import config, events
from item2vec.errors import BadInput

UTC = dt.UTC
RUN_END = dt.datetime(2026, 11, 27, tzinfo=UTC)  # run date 2026-11-26
DEFAULTS = {"user_col": "user_id", "item_col": "item_id", "time_col": "timestamp",
            "event_type_col": "event_type", "event_types": (), "id_type": "string",
            "time_unit": "s", "time_zone": "UTC"}


def _canon(raw, **kw):
    return events.canonical_events(raw, **{**DEFAULTS, **kw})


def _open(spark, path, **kw):
    args = {**DEFAULTS, "fmt": "auto", "partition_col": "dt", "run_end": RUN_END,
            "lookback_days": 0, **kw}
    return events.open_events(spark, str(path), **args)


def _micros(ts: dt.datetime) -> int:
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _run(canon, **kw):
    """Tag, accept and count in one action: (sorted accepted rows as micros, tally)."""
    args = {"run_end": RUN_END, "lookback_days": 0, "event_types": (), **kw}
    rows, tally = events.accept(events.tag_rejections(canon, **args))
    got = sorted(rows.select(events.USER, events.ITEM, F.unix_micros(events.TIME).alias("t"))
                 .collect())
    return [tuple(r) for r in got], tally()


def test_canonical_renames_and_converts_epoch_seconds(spark):
    raw = spark.createDataFrame([("u1", "a", 1_700_000_000, "view")],
                                "uid string, sku string, t long, kind string")
    row = _canon(raw, user_col="uid", item_col="sku", time_col="t", event_type_col="kind").first()
    assert row.asDict() == {"user_id": "u1", "item_id": "a",
                            "timestamp": dt.datetime(2023, 11, 14, 22, 13, 20),
                            "event_type": "view"}


def test_canonical_milliseconds(spark):
    raw = spark.createDataFrame([("u1", "a", 1_700_000_000_123)],
                                "user_id string, item_id string, timestamp long")
    ts = _canon(raw, time_unit="ms").first()["timestamp"]
    assert ts == dt.datetime(2023, 11, 14, 22, 13, 20, 123000)


@pytest.mark.parametrize(("schema", "message"), [
    ("user_id string, item_id string", "input column 'timestamp' (input.time_col) not found"),
    ("user_id string, item_id double, timestamp long",
     "input column 'item_id' (input.item_col) has type double; expected string or integer"),
    ("user_id string, item_id string, timestamp boolean",
     "input column 'timestamp' (input.time_col) has type boolean; expected a timestamp, epoch "
     "seconds (integer or fractional) or ISO-8601 text"),
])
def test_schema_problems_are_bad_input(spark, schema, message):
    raw = spark.createDataFrame([], schema)
    with pytest.raises(BadInput) as err:
        _canon(raw)
    assert message in str(err.value)


def test_event_type_filter_needs_the_column(spark):
    raw = spark.createDataFrame([], "user_id string, item_id string, timestamp long")
    with pytest.raises(BadInput, match="event_types is set"):
        _canon(raw, event_types=("view",))


def test_rejections_are_tagged_and_counted_by_first_reason(spark):
    day = dt.datetime(2026, 11, 20, tzinfo=UTC)
    rows = [
        ("u1", "a", day, "view"),              # ok
        ("u1", "b", day, "purchase"),          # ok
        (None, "a", day, "view"),              # null_user
        ("   ", "a", day, "view"),             # null_user (blank)
        ("u2", None, day, "view"),             # null_item
        ("u2", "a", None, "view"),             # null_time
        ("u2", "a", dt.datetime(1970, 1, 2, tzinfo=UTC), "view"),   # implausible_time
        ("u2", "a", dt.datetime(2026, 11, 27, tzinfo=UTC), "view"),  # after_run_date
        ("u2", "a", dt.datetime(2026, 11, 1, tzinfo=UTC), "view"),   # before_lookback
        ("u2", "a", day, "cart"),              # event_type_filtered
        ("u2", "a", day, None),                # event_type_filtered (null type)
    ]
    df = spark.createDataFrame(rows, "user_id string, item_id string, timestamp timestamp, "
                                     "event_type string")
    tagged = events.tag_rejections(df, run_end=RUN_END, lookback_days=10,
                                   event_types=("view", "purchase"))
    expected = {"null_user": 2, "null_item": 1, "null_time": 1, "implausible_time": 1,
                "after_run_date": 1, "before_lookback": 1, "event_type_filtered": 2}
    assert events.count_rejections(tagged) == (11, expected)
    kept, tally = _run(df, lookback_days=10, event_types=("view", "purchase"))
    assert [r[1] for r in kept] == ["a", "b"]
    assert tally == events.Tally(11, expected, {})


def test_check_usable_explains_why_nothing_is_left():
    with pytest.raises(BadInput, match="input has no rows"):
        events.check_usable(0, {}, time_unit="s")
    with pytest.raises(BadInput, match="milliseconds"):
        events.check_usable(5, {"implausible_time": 5}, time_unit="s")
    with pytest.raises(BadInput, match=r"all 4 rows rejected \(after_run_date=1, "
                                       r"event_type_filtered=3\)"):
        events.check_usable(4, {"event_type_filtered": 3, "after_run_date": 1}, time_unit="s")
    with pytest.raises(BadInput) as err:
        events.check_usable(3, {"unparseable_time": 3}, time_unit="s",
                            examples={"unparseable_time": "25/11/2026"})
    assert str(err.value) == ("no value of the time column (input.time_col) could be read as a "
                              "time (e.g. '25/11/2026'); expected a timestamp, epoch seconds or "
                              "ISO-8601 text such as 2026-11-25T10:00:00Z")
    with pytest.raises(BadInput) as err:
        events.check_usable(2, {"unparseable_item": 2}, time_unit="s",
                            examples={"unparseable_item": "sku-1"})
    assert str(err.value) == ("no item id (input.item_col) is an integer (e.g. 'sku-1'); "
                              "set input.id_type = \"string\"")
    events.check_usable(4, {"event_type_filtered": 3}, time_unit="s")


def test_integer_ids_keep_their_type(spark):
    raw = spark.createDataFrame([(1, 10, 1_700_000_000)],
                                "user_id long, item_id int, timestamp long")
    canon = _canon(raw, id_type="long")
    assert canon.schema.simpleString() == "struct<user_id:bigint,item_id:int,timestamp:timestamp>"


# -- CSV ids ------------------------------------------------------------------------------
def test_csv_zero_padded_ids_stay_distinct_strings(spark, tmp_path):
    path = _csv(tmp_path / "log.csv", "user_id,item_id,timestamp",
                ["007,42,1700000000", "007,00042,1700000060", "7,042,1700000120"])
    canon, source = _open(spark, path)
    assert canon.schema.simpleString() == (  # + what tag_rejections needs to count bad values
        "struct<user_id:string,item_id:string,timestamp:timestamp,"
        "_unparsed:string,_unparsed_value:string>")
    kept, tally = _run(canon)
    assert [r[:2] for r in kept] == [("007", "00042"), ("007", "42"), ("7", "042")]
    assert tally == events.Tally(3, {}, {})
    assert source["format"] == "csv"


def test_csv_ids_as_long(spark, tmp_path):
    path = _csv(tmp_path / "log.csv", "user_id,item_id,timestamp",
                ["1,00042,1700000000", "1,42,1700000060", "2, 7 ,1700000120", "2,sku-9,1700000180",
                 "x1,5,1700000240", "3,,1700000300"])
    canon, _ = _open(spark, path, id_type="long")
    assert canon.schema["user_id"].dataType == T.LongType()
    assert canon.schema["item_id"].dataType == T.LongType()
    kept, tally = _run(canon)
    assert [r[:2] for r in kept] == [(1, 42), (1, 42), (2, 7)]
    assert tally == events.Tally(6, {"unparseable_user": 1, "unparseable_item": 1,
                                     "null_item": 1},
                                 {"unparseable_user": "x1", "unparseable_item": "sku-9"})


def test_parquet_ignores_id_type(spark, tmp_path):
    path = tmp_path / "p"
    spark.createDataFrame([("00042", "a", 1_700_000_000)],
                          "user_id string, item_id string, timestamp long").write.parquet(str(path))
    canon, source = _open(spark, path, id_type="long")
    assert canon.first()["user_id"] == "00042"
    assert source["format"] == "parquet"


# -- times --------------------------------------------------------------------------------
TEXT_TIMES = [  # (raw text, expected UTC time or a rejection reason)
    ("1396437466.94", dt.datetime(2014, 4, 2, 11, 17, 46, 940000, tzinfo=UTC)),
    ("1396437466", dt.datetime(2014, 4, 2, 11, 17, 46, tzinfo=UTC)),
    (" 1.39643746694e+09 ", dt.datetime(2014, 4, 2, 11, 17, 46, 940000, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T10:00:00.123+01:00", dt.datetime(2026, 11, 25, 9, 0, 0, 123000, tzinfo=UTC)),
    ("2026-11-25T10:00+0530", dt.datetime(2026, 11, 25, 4, 30, tzinfo=UTC)),
    ("2026-11-25 10:00:00 America/New_York", dt.datetime(2026, 11, 25, 15, tzinfo=UTC)),
    ("2026-11-25 10:00:00", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),  # zone-less: time_zone
    ("2026-11-25T10:00", dt.datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25", dt.datetime(2026, 11, 25, tzinfo=UTC)),
    ("25/11/2026 10:00", "unparseable_time"),
    ("2026-02-30 10:00:00", "unparseable_time"),
    ("2026-11-25 10:00:00 Mars/Base", "unparseable_time"),
    ("yesterday", "unparseable_time"),
    ("1396437466940", "implausible_time"),  # milliseconds read as seconds
    ("   ", "null_time"),
]


@pytest.mark.parametrize("session_zone", ["UTC", "America/Los_Angeles"])
def test_text_times_in_every_representation(spark, tmp_path, session_zone):
    rows = [f"u,i{n},{text}" for n, (text, _) in enumerate(TEXT_TIMES)]
    canon, _ = _open(spark, _csv(tmp_path / "t.csv", "user_id,item_id,timestamp", rows))
    saved = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", session_zone)  # must not change any result
    try:
        kept, tally = _run(canon)
    finally:
        spark.conf.set("spark.sql.session.timeZone", saved)
    want = [(f"i{n}", _micros(t)) for n, (_, t) in enumerate(TEXT_TIMES)
            if isinstance(t, dt.datetime)]
    assert sorted((r[1], r[2]) for r in kept) == sorted(want)
    assert tally.read == len(TEXT_TIMES)
    assert tally.rejected == {"unparseable_time": 4, "implausible_time": 1, "null_time": 1}
    assert tally.examples == {"unparseable_time": "2026-02-30 10:00:00"}


def test_zone_less_times_use_time_zone(spark, tmp_path):
    rows = ["u,a,2026-11-25 10:00:00", "u,b,2026-07-01 10:00:00", "u,c,2026-07-01T10:00:00Z",
            "u,d,2026-11-25"]
    canon, _ = _open(spark, _csv(tmp_path / "t.csv", "user_id,item_id,timestamp", rows),
                     time_zone="Europe/Berlin")
    kept, _ = _run(canon)
    assert [(r[1], r[2]) for r in kept] == [
        ("a", _micros(dt.datetime(2026, 11, 25, 9, tzinfo=UTC))),   # CET, +01:00
        ("b", _micros(dt.datetime(2026, 7, 1, 8, tzinfo=UTC))),     # CEST, +02:00
        ("c", _micros(dt.datetime(2026, 7, 1, 10, tzinfo=UTC))),    # own zone wins
        ("d", _micros(dt.datetime(2026, 11, 24, 23, tzinfo=UTC)))]  # midnight in Berlin


def test_fractional_and_decimal_epochs(spark):
    raw = spark.createDataFrame(
        [("u", "a", 1396437466.94, "1396437466.940"), ("u", "b", float("nan"), None),
         ("u", "c", 1e300, "9999999999999999999.5"), ("u", "d", None, "-1.5")],
        "user_id string, item_id string, timestamp double, dec string")
    raw = raw.withColumn("dec", F.col("dec").cast("decimal(22,3)"))
    kept, tally = _run(_canon(raw))
    assert [(r[1], r[2]) for r in kept] == [("a", 1396437466940000)]
    assert tally.rejected == {"unparseable_time": 1, "implausible_time": 1, "null_time": 1}
    assert tally.examples == {"unparseable_time": "NaN"}
    kept, tally = _run(_canon(raw, time_col="dec"))
    assert [(r[1], r[2]) for r in kept] == [("a", 1396437466940000)]
    assert tally.rejected == {"implausible_time": 2, "null_time": 1}
    ms = spark.createDataFrame([("u", "a", 1396437466940.5)],
                               "user_id string, item_id string, timestamp double")
    assert _run(_canon(ms, time_unit="ms"))[0] == [("u", "a", 1396437466940500)]


def test_zone_less_timestamps_and_dates_use_time_zone(spark):
    raw = spark.createDataFrame(
        [("u", "a", dt.datetime(2026, 11, 25, 10, 0, 0, 500), dt.date(2026, 11, 25))],
        "user_id string, item_id string, ntz timestamp_ntz, day date")
    for col, want in (("ntz", dt.datetime(2026, 11, 25, 9, 0, 0, 500, tzinfo=UTC)),
                      ("day", dt.datetime(2026, 11, 24, 23, tzinfo=UTC))):
        kept, _ = _run(_canon(raw, time_col=col, time_zone="+01:00"))
        assert kept == [("u", "a", _micros(want))]


def test_every_time_unparseable_is_bad_input(spark, tmp_path):
    rows = ["u,a,25/11/2026 10:00", "u,b,26/11/2026 10:00"]
    canon, _ = _open(spark, _csv(tmp_path / "t.csv", "user_id,item_id,timestamp", rows))
    _, tally = _run(canon)
    with pytest.raises(BadInput, match=r"could be read as a time \(e\.g\. '25/11/2026 10:00'\)"):
        events.check_usable(tally.read, tally.rejected, time_unit="s",
                            examples=tally.examples)


def test_time_zone_is_checked_when_the_config_loads():
    assert config.load(overrides=["input.time_zone=Europe/Berlin"]).input.time_zone == \
        "Europe/Berlin"
    assert config.load(overrides=['input.time_zone="+05:30"']).input.time_zone == "+05:30"
    with pytest.raises(BadInput) as err:
        config.load(overrides=["input.time_zone=Europe/Berln"])
    assert str(err.value) == ("config input.time_zone: unknown time zone 'Europe/Berln'; expected "
                              "an IANA name such as \"UTC\" or \"Europe/Berlin\", or an offset "
                              "such as \"+01:00\"")
    with pytest.raises(BadInput, match=r"config input\.id_type: expected one of string, long"):
        config.load(overrides=["input.id_type=int"])


# -- partitions, one pass, fingerprint -----------------------------------------------------
DAYS = {"2026-11-10": 3, "2026-11-20": 4, "2026-11-26": 5, "2026-11-27": 6}  # rows per partition


def _partitioned(spark, root: Path, fmt: str) -> Path:
    for day, n in DAYS.items():
        start = dt.datetime.fromisoformat(day).replace(tzinfo=UTC, hour=12)
        rows = [(f"u{i}", f"i{i}", int(start.timestamp()) + i) for i in range(n)]
        part = spark.createDataFrame(rows, "user_id string, item_id string, timestamp long")
        getattr(part.coalesce(1).write, fmt)(str(root / f"dt={day}"), **(
            {"header": True} if fmt == "csv" else {}))
    return root


@pytest.mark.parametrize(("fmt", "infer"), [("parquet", True), ("csv", True),
                                            ("parquet", False), ("csv", False)])
def test_date_partitions_outside_the_window_are_not_read(spark, tmp_path, fmt, infer):
    root = _partitioned(spark, tmp_path / "log", fmt)
    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    spark.conf.set(key, str(infer).lower())  # off: dt is a string column
    try:
        canon, source = _open(spark, root, lookback_days=10)
        unpruned, _ = _open(spark, root, lookback_days=10, partition_col="")
    finally:
        spark.conf.unset(key)
    # Files outside [2026-11-17, 2026-11-26] vanish after planning: reading one fails the job.
    for day in ("2026-11-10", "2026-11-27"):
        shutil.rmtree(root / f"dt={day}")
    with pytest.raises(Exception, match=r"FILE_NOT_EXIST|does not exist"):
        _run(unpruned, lookback_days=10)
    kept, tally = _run(canon, lookback_days=10)
    assert tally == events.Tally(4 + 5, {}, {})
    assert len(kept) == 9
    assert source["files_read"] == 2 and source["partitions_pruned"] == 2
    data = [p for d in ("2026-11-20", "2026-11-26") for p in (root / f"dt={d}").iterdir()
            if p.name.startswith("part-") and not p.name.endswith(".crc")]
    assert source["bytes_read"] == sum(p.stat().st_size for p in data)
    assert source["format"] == fmt


def test_no_lookback_prunes_only_after_the_run_date(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "parquet")
    canon, source = _open(spark, root, lookback_days=0)
    plan = canon._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [" in plan and "2026-11-26" in plan
    _, tally = _run(canon)
    assert tally.read == 3 + 4 + 5
    assert source["partitions_pruned"] == 1 and source["files_read"] == 3


def test_csv_header_comes_from_a_file_inside_the_window(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "csv")
    old = root / "dt=2026-11-10" / "part-big.csv.gz"  # the largest file: Spark's first pick
    old.write_bytes(b"not gzip " * 10_000)
    canon, source = _open(spark, root, lookback_days=10)
    assert _run(canon, lookback_days=10)[1] == events.Tally(9, {}, {})
    assert source["files_read"] == 2


def test_no_partition_inside_the_window_is_bad_input(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "parquet")
    with pytest.raises(BadInput) as err:
        _open(spark, root, lookback_days=3, run_end=dt.datetime(2026, 11, 17, tzinfo=UTC))
    assert str(err.value) == (f"no dt=YYYY-MM-DD partition of {root} is within the lookback "
                              f"window 2026-11-14..2026-11-16 (input.lookback_days=3, "
                              f"--run-date 2026-11-16)")


def test_empty_partition_col_reads_every_partition(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "parquet")
    canon, source = _open(spark, root, lookback_days=10, partition_col="")
    assert _run(canon, lookback_days=10)[1].rejected == {"before_lookback": 3,
                                                         "after_run_date": 6}
    assert source["partitions_pruned"] == 0 and source["files_read"] == 4


def _input_records(spark) -> int:
    """Rows read from files by every stage so far (Spark's status store)."""
    sc = spark.sparkContext._jsc.sc()
    sc.listenerBus().waitUntilEmpty()
    store = sc.statusStore()
    no_quantiles = spark.sparkContext._gateway.new_array(spark.sparkContext._jvm.double, 0)
    stages = store.stageList(None, False, False, no_quantiles,
                             getattr(store, "stageList$default$5")())
    total, it = 0, stages.iterator()
    while it.hasNext():
        total += it.next().inputRecords()
    return total


def _sessions(canon, *, run_end=RUN_END, persist=True):
    """What a run does: accept, sessionise, persist, count the sessions, then read the tally
    (and the rows read from files meanwhile; reading a cached batch counts one more)."""
    from item2vec.sessions import session_stats, sessionize

    tagged = events.tag_rejections(canon, run_end=run_end, lookback_days=0, event_types=())
    ok, tally = events.accept(tagged)
    sessions = sessionize(ok, gap_minutes=30, dedupe_consecutive=True, min_length=2,
                          max_length=200, long_policy="split")
    sessions = sessions.persist() if persist else sessions
    with pytest.raises(RuntimeError, match="only after an action"):
        tally()
    before = _input_records(spark=canon.sparkSession)
    stats = session_stats(sessions)
    got = tally()
    read = _input_records(spark=canon.sparkSession) - before
    sessions.unpersist()
    return stats, got, read


def test_counts_and_sessions_come_from_one_read_of_the_log(spark, tmp_path):
    rows = [f"u{n % 3},i{n % 5},{1_800_000_000 + 60 * n}" for n in range(40)]
    rows += ["u9,i1,bad", ",i1,1800000000", "u9,i2,4102444800"]  # unparseable, null, 2100 ok
    canon, _ = _open(spark, _csv(tmp_path / "t.csv", "user_id,item_id,timestamp", rows))
    stats, tally, read = _sessions(canon, run_end=dt.datetime(2100, 6, 1, tzinfo=UTC),
                                   persist=False)
    assert stats == (3, 40)
    assert tally == events.Tally(43, {"unparseable_time": 1, "null_user": 1},
                                 {"unparseable_time": "bad"})
    assert read == 43  # each row read once, counts included


@pytest.mark.parametrize(("times", "tally"), [
    (["bad", "worse"], events.Tally(2, {"unparseable_time": 2}, {"unparseable_time": "bad"})),
    (["1800000000", "1800000001"], events.Tally(2, {}, {})),  # accepted, but no session of 2
])
def test_counts_when_nothing_comes_out(spark, tmp_path, times, tally):
    rows = [f"u,i,{t}" for t in times]
    canon, _ = _open(spark, _csv(tmp_path / "t.csv", "user_id,item_id,timestamp", rows))
    stats, got, _ = _sessions(canon, run_end=dt.datetime(2100, 6, 1, tzinfo=UTC))
    assert stats == (0, 0)
    assert got == tally


def test_fingerprint_is_stable_and_follows_the_files_read(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "parquet")
    first = events.list_input(spark, str(root))
    assert [f.path.split("/")[0] for f in first] == [f"dt={d}" for d in DAYS]  # no _SUCCESS
    assert events.fingerprint(first) == events.fingerprint(events.list_input(spark, str(root)))
    _, source = _open(spark, root, lookback_days=10)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # same names, sizes and mtimes under another root
    assert _open(spark, copy, lookback_days=10)[1]["fingerprint"] == source["fingerprint"]
    # A change outside the window does not change what is read; one inside does.
    old = next((copy / "dt=2026-11-10").glob("part-*"))
    os.utime(old, ns=(0, 0))
    assert _open(spark, copy, lookback_days=10)[1]["fingerprint"] == source["fingerprint"]
    new = next((copy / "dt=2026-11-20").glob("part-*"))
    stat = new.stat()
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _open(spark, copy, lookback_days=10)[1]["fingerprint"] != source["fingerprint"]


def test_hadoop_listing_read_in_bulk_matches_field_by_field_and_the_local_walk(spark, tmp_path):
    root = _partitioned(spark, tmp_path / "log", "csv")
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(str(root))
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    statuses = jvm.org.apache.hadoop.util.functional.RemoteIterators.toList(
        fs.listFiles(path, True))
    by_field = [(s.getPath().toString(), s.getLen(), s.getModificationTime())
                for s in (statuses.get(i) for i in range(statuses.size()))]
    assert events._statuses(statuses) == by_field
    assert len(by_field) == len(DAYS) * 2  # a data file and _SUCCESS per day
    hadoop = sorted(events._list_hadoop(jvm, fs, fs.makeQualified(path)))
    assert hadoop == sorted(events._list_local(str(root)))
    assert [rel.split("/")[0] for rel, _, _ in hadoop] == [f"dt={d}" for d in DAYS]
    assert events.detect_format(str(root), events.list_input(spark, str(root))) == "csv"


def test_window_days():
    assert events.window_days(RUN_END, 10) == (dt.date(2026, 11, 17), dt.date(2026, 11, 26))
    assert events.window_days(RUN_END, 0) == (None, dt.date(2026, 11, 26))


def test_missing_path_is_bad_input(spark, tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        events.read_events(spark, str(tmp_path / "nope"), fmt="auto")
    with pytest.raises(BadInput, match="input path does not exist"):
        _open(spark, tmp_path / "nope")
