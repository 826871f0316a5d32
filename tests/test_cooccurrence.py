"""Co-occurrence evidence counted from hand-made sessions, and the popularity list."""

import numpy as np

from item2vec import cooccurrence as co

SESSIONS = "session_id long, items array<string>"
KEYED = "session_id long, keys array<int>"
WINDOWS = co.Windows(near=2, forward=3, cooc=1, rules=2)
IDS = "abcx"  # catalogue keys 0..3


def _evidence(spark, sessions, *, fit=(), items=(), buckets=3, fit_flags=None,
              chunk_rows=co.CHUNK_ROWS):
    keyed = spark.createDataFrame(
        [(i, [IDS.index(x) for x in s], *([fit_flags[i]] if fit_flags else []))
         for i, s in enumerate(sessions)], KEYED + (", _fit boolean" if fit_flags else ""))
    listed = spark.createDataFrame([(IDS.index(x),) for x in items], "item_id int")
    return co.evidence(keyed, listed, windows=WINDOWS, span=len(IDS), buckets=buckets, fit=fit,
                       chunk_rows=chunk_rows)


def _rows(evidence, names=co.FEATURES):
    return {(IDS[r.item_id], IDS[r.other_id]): tuple(round(r[f], 6) for f in names)
            for r in co.partner_rows(evidence).collect()}


def test_evidence_sums_both_orders_for_symmetric_counts_and_one_for_forward(spark):
    ev = _evidence(spark, [["a", "b", "c", "a"], ["b", "c"]])
    # features: near (d <= 2, either order), fwd1 / fwd2 (1/d, 1/d^2 over the partner's
    # occurrences d <= 3 after the item), near_c (d <= 1, either order), rules (1/d, d <= 2).
    # Session 1: a-b, b-c, c-a at d 1; a-c, b-a at d 2; a-a (d 3) is no pair
    assert _rows(ev) == {
        ("a", "b"): (2, 1.0, 1.0, 1, 1.0),  # a->b d 1, b->a d 2
        ("b", "a"): (2, 0.5, 0.25, 1, 0.5),
        ("b", "c"): (2, 2.0, 2.0, 2, 2.0),  # both sessions
        ("c", "b"): (2, 0.0, 0.0, 2, 0.0),  # c never precedes b
        ("c", "a"): (2, 1.0, 1.0, 1, 1.0),  # c->a d 1, a->c d 2
        ("a", "c"): (2, 0.5, 0.25, 1, 0.5),
    }
    # the forward pairs counted (what the job reports as item pairs): a-b, b-c, c-a, a-c, b-a
    assert sum(r.pairs for r in ev.collect()) == 5


def test_evidence_does_not_depend_on_how_items_are_bucketed(spark):
    sessions = [["a", "b", "c", "a"], ["b", "c"], ["x", "a", "b"], ["c", "x"]]
    one = _rows(_evidence(spark, sessions, buckets=1))
    assert one == _rows(_evidence(spark, sessions, buckets=4))
    assert one == _rows(_evidence(spark, sessions, buckets=7))
    assert one[("x", "b")] == (1, 0.5, 0.25, 0, 0.5)


def test_each_bucket_is_counted_alone_in_its_own_partition(spark):
    from pyspark.sql import functions as F

    # hashing the bucket numbers 0..6 into 7 partitions would put some together
    ev = _evidence(spark, [["a", "b", "c", "a"], ["b", "c"], ["x", "a", "b"], ["c", "x"]],
                   buckets=7).withColumn("partition", F.spark_partition_id())
    placed = {(r.bucket, r.partition) for r in ev.select("bucket", "partition").collect()}
    assert {b for b, _ in placed} == {0, 1, 2, 3}  # the buckets of keys 0..3
    assert all(b == p for b, p in placed)
    routes = co._routes(spark, 25)
    assert len(set(routes)) == 25
    hashed = spark.createDataFrame([(v,) for v in routes], "v int").select(
        F.pmod(F.hash("v"), F.lit(25)).alias("p"))
    assert [r.p for r in hashed.collect()] == list(range(25))


def test_evidence_splits_large_buckets_into_chunks_of_whole_items(spark):
    sessions = [["a", "b", "c", "a"], ["b", "c"], ["x", "a", "b"]]
    chunked = _evidence(spark, sessions, buckets=1, chunk_rows=1)
    rows = chunked.collect()
    assert len(rows) == 4  # one item per chunk (each has more partners than CHUNK_ROWS)
    assert [r.items for r in rows] == [1, 1, 1, 1]
    keys = [co.read_chunk(r.data).column("item_id").to_pylist() for r in rows]
    assert sorted(k for ks in keys for k in ks) == [0, 1, 2, 3]
    assert _rows(chunked) == _rows(_evidence(spark, sessions, buckets=1))


def test_items_without_partners_get_an_empty_row(spark):
    ev = _evidence(spark, [["a", "b"]], items=["a", "x"])
    chunks = [co.read_chunk(r.data) for r in ev.collect()]
    listed = {k: len(o) for c in chunks for k, o in zip(
        c.column("item_id").to_pylist(), c.column("other_id").to_pylist(), strict=True)}
    assert listed == {0: 1, 1: 1, 3: 0}  # a and b have each other; x only asked to be listed


def test_fit_sums_only_the_fit_sessions(spark):
    ev = _evidence(spark, [["a", "b"], ["a", "b"]], fit=("near", "fwd1"),
                   fit_flags=[True, False])
    got = _rows(ev, ("near", "near_fit", "fwd1", "fwd1_fit", "fwd2"))
    assert got[("a", "b")] == (2, 1, 2, 1, 2)
    assert got[("b", "a")] == (2, 1, 0, 0, 0)
    names = co.read_chunk(ev.first().data).schema.names
    assert "fwd2_fit" not in names and "fwd2" in names  # summed, not over the fit part


def test_occurrence_codes_ignore_the_rest_of_a_sliced_batch():
    # a batch's list column may start past its values buffer's start
    keys = np.array([9, 9, 0, 1, 2], dtype=np.int32)
    offsets = np.array([2, 4, 5])  # sessions [0, 1] and [2]
    layout = co.Layout(span=10, window=2, buckets=1)
    codes = co.occurrence_codes(keys, offsets, np.array([False, False]), layout)
    pairs = sorted(((c >> layout.bits) // 10, (c >> layout.bits) % 10) for c in codes)
    assert pairs == [(0, 1), (1, 0)]


def test_item_counts(spark):
    sessions = spark.createDataFrame([(1, ["a", "b", "a"]), (2, ["b", "c"])], SESSIONS)
    assert sorted(tuple(r) for r in co.item_counts(sessions).collect()) == [
        ("a", 2), ("b", 2), ("c", 1)]


def test_popularity_is_the_top_k_plus_one_by_frequency_then_id(spark):
    counts = spark.createDataFrame([("d", 3), ("b", 3), ("c", 3), ("a", 9)],
                                   "item_id string, frequency long")
    assert [tuple(r) for r in co.popularity(counts, k=2).orderBy("rank").collect()] == [
        (1, "a", 9.0), (2, "b", 3.0), (3, "c", 3.0)]


def test_buckets_follow_the_data_and_the_cores():
    assert co.buckets_for(1000, 5, partitions=2) == 2  # a small log: one per core
    assert co.buckets_for(10_000_000, 5, partitions=2) == 25  # <= 4M records each
    assert co.buckets_for(10_000_000, 5, partitions=64) == 64


def test_codes_sort_by_top_bits_then_runs_equals_a_plain_sort():
    """co._sorted splits by the top bits and sorts each run: it must equal np.sort on wide and
    narrow ranges, heavy repeats, all-equal codes and arrays too short to split."""
    rng = np.random.default_rng(7)
    for codes in (rng.integers(0, 1 << 40, 200_000), rng.integers(0, 1 << 62, 70_000),
                  rng.integers(0, 300, 100_000), np.zeros(80_000, dtype=np.int64),
                  rng.integers(0, 1 << 40, 500)):
        assert np.array_equal(co._sorted(codes), np.sort(codes))
