"""Co-occurrence evidence counted from hand-made sessions, and the popularity list."""

from item2vec import cooccurrence as co
from item2vec import sparkenv

SESSIONS = "session_id long, items array<string>"
WINDOWS = co.Windows(near=2, forward=3, cooc=1, rules=2)


def _rows(df):
    return {(r.item_id, r.other_id): tuple(round(r[f], 6) for f in co.FEATURES)
            for r in df.collect()}


def test_pair_evidence_counts_forward_pairs_by_window(spark):
    sessions = spark.createDataFrame([(1, ["a", "b", "c", "a"]), (2, ["b", "c"])], SESSIONS)
    got = _rows(co.pair_evidence(sessions, windows=WINDOWS))
    # features: near (d <= 2), fwd1 / fwd2 (1/d, 1/d^2 over d <= 3), near_c (d <= 1), rules
    # (1/d over d <= 2). Session 1: a-b, b-c, c-a at d 1; a-c, b-a at d 2; a-a (d 3) is no pair
    assert got == {
        ("a", "b"): (1, 1.0, 1.0, 1, 1.0),
        ("b", "c"): (2, 2.0, 2.0, 2, 2.0),  # both sessions
        ("c", "a"): (1, 1.0, 1.0, 1, 1.0),
        ("a", "c"): (1, 0.5, 0.25, 0, 0.5),
        ("b", "a"): (1, 0.5, 0.25, 0, 0.5),
    }


def test_pair_evidence_without_partial_aggregation_counts_the_same(spark):
    # the job plans the evidence with the pre-shuffle partial aggregation bypassed
    sessions = spark.createDataFrame([(1, ["a", "b", "c", "a"]), (2, ["b", "c"]),
                                      (3, ["a", "b"])], SESSIONS)
    key = next(iter(sparkenv.NO_PARTIAL_AGGREGATION))
    before = spark.conf.get(key, None)
    with sparkenv.scoped_conf(spark, sparkenv.NO_PARTIAL_AGGREGATION):
        bypassed = co.pair_evidence(sessions, windows=WINDOWS).persist()
        plan = bypassed._jdf.queryExecution().executedPlan().toString()
    assert spark.conf.get(key, None) == before  # restored once the block is left
    assert "partial_sum" not in plan  # a single aggregation after the shuffle
    assert _rows(bypassed) == _rows(co.pair_evidence(sessions, windows=WINDOWS))
    assert _rows(bypassed)[("a", "b")] == (2, 2.0, 2.0, 2, 2.0)
    bypassed.unpersist()


def test_oriented_adds_the_symmetric_counts_of_the_reverse_pair(spark):
    sessions = spark.createDataFrame([(1, ["a", "x", "b"]), (2, ["b", "a"])], SESSIONS)
    rows = co.oriented(co.pair_evidence(sessions, windows=WINDOWS)).where(
        "item_id = 'a' and other_id = 'b'").collect()
    total = {f: sum(r[f] for r in rows) for f in co.FEATURES}
    # a->b at d 2 (session 1) and b->a at d 1 (session 2): near counts both, forward only a->b
    assert total == {"near": 2, "fwd1": 0.5, "fwd2": 0.25, "near_c": 1, "rules": 0.5}


def test_fit_sums_only_the_fit_sessions(spark):
    sessions = spark.createDataFrame([(1, ["a", "b"], True), (2, ["a", "b"], False)],
                                     SESSIONS + ", _fit boolean")
    ev = co.pair_evidence(sessions, windows=WINDOWS, fit=("near", "fwd1")).first()
    assert (ev.near, ev.near_fit, ev.fwd1, ev.fwd1_fit) == (2, 1, 2, 1)
    assert "fwd2_fit" not in ev.asDict() and ev.fwd2 == 2  # summed, not over the fit part
    fit = co.oriented(co.pair_evidence(sessions, windows=WINDOWS, fit=("near", "fwd1")),
                      fit=True, features=("near", "fwd1"))
    assert {(r.item_id, r.other_id): r.near for r in fit.collect()} == {("a", "b"): 1,
                                                                       ("b", "a"): 1}


def test_item_counts(spark):
    sessions = spark.createDataFrame([(1, ["a", "b", "a"]), (2, ["b", "c"])], SESSIONS)
    assert sorted(tuple(r) for r in co.item_counts(sessions).collect()) == [
        ("a", 2), ("b", 2), ("c", 1)]


def test_popularity_is_the_top_k_plus_one_by_frequency_then_id(spark):
    counts = spark.createDataFrame([("d", 3), ("b", 3), ("c", 3), ("a", 9)],
                                   "item_id string, frequency long")
    assert [tuple(r) for r in co.popularity(counts, k=2).orderBy("rank").collect()] == [
        (1, "a", 9.0), (2, "b", 3.0), (3, "c", 3.0)]
