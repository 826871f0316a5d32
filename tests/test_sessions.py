import datetime as dt

from item2vec.sessions import session_stats, sessionize

T0 = dt.datetime(2026, 11, 1, 12, 0, 0)


def _events(spark, rows):
    data = [(u, i, T0 + dt.timedelta(minutes=m)) for u, i, m in rows]
    return spark.createDataFrame(data, "user_id string, item_id string, timestamp timestamp")


def _run(spark, rows, **kw):
    params = {"gap_minutes": 30, "dedupe_consecutive": True, "min_length": 2,
              "max_length": 200, "long_policy": "split"} | kw
    out = sessionize(_events(spark, rows), **params).collect()
    return sorted((r["user_id"], r["items"]) for r in out)


def test_gap_splits_sessions_at_the_boundary(spark):
    rows = [("u", "a", 0), ("u", "b", 30), ("u", "c", 60.01), ("u", "d", 61)]
    # 30 minutes exactly is still the same session; just over starts a new one.
    assert _run(spark, rows) == [("u", ["a", "b"]), ("u", ["c", "d"])]


def test_order_by_time_then_item_regardless_of_input_order(spark):
    rows = [("u", "c", 2), ("u", "b", 1), ("u", "z", 1), ("u", "a", 0)]
    assert _run(spark, rows) == [("u", ["a", "b", "z", "c"])]


def test_consecutive_repeats_are_dropped_but_returns_kept(spark):
    rows = [("u", "a", 0), ("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("u", "a", 4)]
    assert _run(spark, rows) == [("u", ["a", "b", "a"])]
    assert _run(spark, rows, dedupe_consecutive=False) == [("u", ["a", "a", "b", "a", "a"])]


def test_repeat_across_a_session_boundary_is_not_a_repeat(spark):
    rows = [("u", "a", 0), ("u", "b", 1), ("u", "b", 100), ("u", "c", 101)]
    assert _run(spark, rows) == [("u", ["a", "b"]), ("u", ["b", "c"])]


def test_min_length_counts_after_dedupe(spark):
    rows = [("u", "a", 0), ("u", "a", 1), ("v", "a", 0), ("v", "b", 1), ("v", "c", 2)]
    assert _run(spark, rows) == [("v", ["a", "b", "c"])]
    assert _run(spark, rows, min_length=4) == []


def test_long_sessions_split_or_truncate(spark):
    rows = [("bot", f"i{n:02d}", n * 0.1) for n in range(7)]
    split = _run(spark, rows, max_length=3)
    assert split == [("bot", ["i00", "i01", "i02"]), ("bot", ["i03", "i04", "i05"])]
    # the last chunk (one item) is shorter than min_length and dropped
    assert _run(spark, rows, max_length=3, min_length=1)[-1] == ("bot", ["i06"])
    assert _run(spark, rows, max_length=3, long_policy="truncate") == [
        ("bot", ["i00", "i01", "i02"])]


def test_users_are_independent_and_ids_are_stable(spark):
    rows = [("u", "a", 0), ("u", "b", 1), ("v", "a", 0), ("v", "b", 1)]
    params = {"gap_minutes": 30, "dedupe_consecutive": True, "min_length": 2,
              "max_length": 200, "long_policy": "split"}
    first = sessionize(_events(spark, rows), **params)
    second = sessionize(_events(spark, list(reversed(rows))), **params)
    ids = sorted(r["session_id"] for r in first.collect())
    assert ids == sorted(r["session_id"] for r in second.collect())
    assert len(set(ids)) == 2
    assert session_stats(first) == (2, 4)
