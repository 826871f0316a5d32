"""Co-occurrence evidence counted from hand-made sessions, and the popularity list."""

from item2vec import cooccurrence as co

SESSIONS = "session_id long, items array<string>"


def test_pair_evidence_counts_by_distance_and_direction(spark):
    sessions = spark.createDataFrame([(1, ["a", "b", "c", "a"]), (2, ["b", "c"])], SESSIONS)
    ev = co.pair_evidence(sessions, max_distance=3)
    got = {(r.item_id, r.other_id): (r.fwd, r.bwd) for r in ev.collect()}
    # session 1: a-b, b-c, c-a at distance 1; a-c, b-a at 2; a-a at 3 is the same item
    assert got == {
        ("a", "b"): ([1, 0, 0], [0, 1, 0]), ("b", "a"): ([0, 1, 0], [1, 0, 0]),
        ("a", "c"): ([0, 1, 0], [1, 0, 0]), ("c", "a"): ([1, 0, 0], [0, 1, 0]),
        ("b", "c"): ([2, 0, 0], [0, 0, 0]), ("c", "b"): ([0, 0, 0], [2, 0, 0]),
    }
    assert ev.schema["fwd"].dataType.simpleString() == "array<bigint>"


def test_fit_counts_only_the_fit_sessions(spark):
    sessions = spark.createDataFrame([(1, ["a", "b"], True), (2, ["a", "b"], False)],
                                     SESSIONS + ", _fit boolean")
    ev = co.pair_evidence(sessions, max_distance=1, fit=True).where("item_id = 'a'").first()
    assert (ev.fwd, ev.fwd_fit, ev.bwd, ev.bwd_fit) == ([2], [1], [0], [0])


def test_keyed_sessions_keep_order_and_the_fit_flag(spark):
    sessions = spark.createDataFrame([(1, ["b", "a", "b", "c"], True), (2, ["c", "a"], False)],
                                     SESSIONS + ", _fit boolean")
    catalogue = spark.createDataFrame([("a", 0), ("b", 1), ("c", 2)],
                                      "item_id string, item_index int")
    keyed = co.keyed_sessions(sessions, catalogue, fit=True)
    assert sorted(tuple(r) for r in keyed.collect()) == [(1, True, [1, 0, 1, 2]),
                                                        (2, False, [2, 0])]
    ev = co.pair_evidence(keyed, max_distance=1, items=co.KEYS)
    assert {(r.item_id, r.other_id): r.fwd for r in ev.collect()}[(1, 0)] == [1]


def test_item_counts(spark):
    sessions = spark.createDataFrame([(1, ["a", "b", "a"]), (2, ["b", "c"])], SESSIONS)
    assert sorted(tuple(r) for r in co.item_counts(sessions).collect()) == [
        ("a", 2), ("b", 2), ("c", 1)]


def test_popularity_is_the_top_k_plus_one_by_frequency_then_id(spark):
    counts = spark.createDataFrame([("d", 3), ("b", 3), ("c", 3), ("a", 9)],
                                   "item_id string, frequency long")
    assert [tuple(r) for r in co.popularity(counts, k=2).orderBy("rank").collect()] == [
        (1, "a", 9.0), (2, "b", 3.0), (3, "c", 3.0)]
