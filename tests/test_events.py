import datetime as dt

import pytest
from pyspark.sql import types as T

from item2vec import config, events
from item2vec.errors import BadInput

UTC = dt.UTC
RUN_END = dt.datetime(2026, 11, 27, tzinfo=UTC)


def _cfg(**inp):
    return config.load().replace(input=inp).input


def _raw(spark, rows, time_type="long"):
    schema = f"uid string, sku string, t {time_type}, kind string"
    return spark.createDataFrame(rows, schema)


def test_canonical_renames_and_converts_epoch_seconds(spark):
    raw = _raw(spark, [("u1", "a", 1_700_000_000, "view")])
    cfg = _cfg(user_col="uid", item_col="sku", time_col="t", event_type_col="kind")
    row = events.canonical_events(raw, cfg).first()
    assert row.asDict() == {"user_id": "u1", "item_id": "a",
                            "timestamp": dt.datetime(2023, 11, 14, 22, 13, 20),
                            "event_type": "view"}


def test_canonical_milliseconds(spark):
    raw = _raw(spark, [("u1", "a", 1_700_000_000_123, "view")])
    cfg = _cfg(user_col="uid", item_col="sku", time_col="t", event_type_col="kind",
               time_unit="ms")
    ts = events.canonical_events(raw, cfg).first()["timestamp"]
    assert ts == dt.datetime(2023, 11, 14, 22, 13, 20, 123000)


@pytest.mark.parametrize(("schema", "message"), [
    ("user_id string, item_id string", "input column 'timestamp' (input.time_col) not found"),
    ("user_id string, item_id double, timestamp long",
     "input column 'item_id' (input.item_col) has type double; expected string or integer"),
    ("user_id string, item_id string, timestamp string",
     "input column 'timestamp' (input.time_col) has type string; expected timestamp"),
])
def test_schema_problems_are_bad_input(spark, schema, message):
    raw = spark.createDataFrame([], schema)
    with pytest.raises(BadInput) as err:
        events.canonical_events(raw, _cfg())
    assert message in str(err.value)


def test_event_type_filter_needs_the_column(spark):
    raw = spark.createDataFrame([], "user_id string, item_id string, timestamp long")
    with pytest.raises(BadInput, match="event_types is set"):
        events.canonical_events(raw, _cfg(event_types=["view"]))


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
    total, rejected = events.count_rejections(tagged)
    assert total == 11
    assert rejected == {"null_user": 2, "null_item": 1, "null_time": 1, "implausible_time": 1,
                        "after_run_date": 1, "before_lookback": 1, "event_type_filtered": 2}
    kept = sorted(r["item_id"] for r in events.accepted(tagged).collect())
    assert kept == ["a", "b"]


def test_check_usable_explains_why_nothing_is_left():
    with pytest.raises(BadInput, match="input has no rows"):
        events.check_usable(0, {}, time_unit="s")
    with pytest.raises(BadInput, match="milliseconds"):
        events.check_usable(5, {"implausible_time": 5}, time_unit="s")
    with pytest.raises(BadInput, match=r"all 4 rows rejected \(after_run_date=1, "
                                       r"event_type_filtered=3\)"):
        events.check_usable(4, {"event_type_filtered": 3, "after_run_date": 1}, time_unit="s")
    events.check_usable(4, {"event_type_filtered": 3}, time_unit="s")


def test_integer_ids_keep_their_type(spark):
    raw = spark.createDataFrame([(1, 10, 1_700_000_000)],
                                "user_id long, item_id int, timestamp long")
    canon = events.canonical_events(raw, _cfg())
    assert isinstance(canon.schema["item_id"].dataType, T.IntegerType)


def test_read_csv_with_header(spark, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,a,1700000000\nu1,b,1700000060\n")
    raw = events.read_events(spark, str(path), fmt="auto")
    canon = events.canonical_events(raw, _cfg())
    assert canon.count() == 2


def test_missing_path_is_bad_input(spark, tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        events.read_events(spark, str(tmp_path / "nope"), fmt="auto")
