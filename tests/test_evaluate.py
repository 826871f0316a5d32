"""Evaluation: metrics, the shared scoring of every model on the same pairs, the split, the
quality gate and the regression gate."""

import datetime as dt
import math

import pyarrow as pa
import pytest

from item2vec import evaluate as ev

LISTS = "model string, item_id string, rank int, rec_item string"
PAIRS = "prev_item string, next_item string"


def test_rank_metrics_hand_computed(spark):
    # ranks of the true next item for 4 test pairs: 1, 3, 12 and missing
    ranks = spark.createDataFrame([(1,), (3,), (12,), (None,)], "rank int")
    row = ranks.agg(*ev.rank_metrics((10, 20))).first().asDict()
    assert row["hr@10"] == pytest.approx(2 / 4)
    assert row["mrr@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert row["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert row["hr@20"] == pytest.approx(3 / 4)
    assert row["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 4)
    assert row["ndcg@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(13)) / 4)


def _lists(spark, rows, *, popular=(("a", 1), ("b", 2), ("c", 3)), counts=None, items=4):
    counts = counts or [("a", 5), ("b", 4), ("c", 3), ("x", 1)]
    return ev.Lists(
        ev.lists_from_entries(spark.createDataFrame(rows, LISTS)),
        spark.createDataFrame([(r, i) for i, r in popular], "rank int, rec_item string"),
        spark.createDataFrame(counts, "item_id string, frequency long"), items)


def test_every_model_is_scored_on_the_same_pairs(spark):
    pairs = spark.createDataFrame([("a", "b", "head"), ("a", "c", "tail"), ("x", "b", "head")],
                                  PAIRS + ", bucket string")
    lists = _lists(spark, [
        ("published", "a", 1, "c"), ("published", "a", 2, "b"), ("published", "x", 1, "a"),
        ("embedding", "a", 1, "b"),
        ("cooc_knn", "a", 1, "x"),
        ("sequential_rules", "x", 1, "b"), ("sequential_rules", "x", 2, "c"),
    ])
    m = ev.score(pairs, lists, ks=(1, 2))
    assert list(m) == list(ev.MODELS)
    pub = m["published"]
    assert pub["hr@1"] == pytest.approx(1 / 3) and pub["hr@2"] == pytest.approx(2 / 3)
    assert pub["mrr@2"] == pytest.approx((0.5 + 1) / 3)
    assert pub["pair_coverage"] == 1.0
    assert pub["coverage@1"] == pytest.approx(2 / 4) and pub["coverage@2"] == pytest.approx(3 / 4)
    assert pub["hr@1_by_popularity"] == {"head": 0.0, "tail": 1.0}
    # a model with no list for the query item misses: embedding answers 2 of 3 pairs
    assert m["embedding"]["hr@1"] == pytest.approx(1 / 3)
    assert m["embedding"]["pair_coverage"] == pytest.approx(2 / 3)
    assert m["cooc_knn"]["hr@2"] == 0.0
    assert m["sequential_rules"]["hr@1"] == pytest.approx(1 / 3)
    # popularity: a, b, c for every query, the query item itself skipped
    # (a -> b at 1, a -> c at 2; x -> b at 2)
    pop = m["popularity"]
    assert pop["hr@1"] == pytest.approx(1 / 3) and pop["hr@2"] == 1.0
    assert pop["mrr@2"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    # coverage of popularity: a's list shows b (and c at 2); x's shows a (and b)
    assert pop["coverage@1"] == pytest.approx(2 / 4) and pop["coverage@2"] == pytest.approx(3 / 4)


def test_lists_by_integer_key_score_as_lists_by_id(spark):
    """Lists named by integer keys (Lists.keys) score exactly as the same lists by id, items
    the lists never saw included: an unseen query item (z) gets only popularity's list, an
    unseen next item (y) is a miss for every model."""
    rows = [("published", "a", 1, "c"), ("published", "a", 2, "b"), ("published", "x", 1, "a"),
            ("embedding", "a", 1, "b"), ("sequential_rules", "x", 1, "b")]
    pairs = spark.createDataFrame([("a", "b"), ("a", "c"), ("x", "b"), ("z", "a"), ("a", "y")],
                                  PAIRS)
    by_id = _lists(spark, rows)
    key = {"a": 0, "b": 1, "c": 2, "x": 3}
    by_key = ev.Lists(
        ev.lists_from_entries(spark.createDataFrame(
            [(m, key[i], r, key[j]) for m, i, r, j in rows],
            "model string, item_id int, rank int, rec_item int")),
        spark.createDataFrame([(1, 0), (2, 1), (3, 2)], "rank int, rec_item int"),
        spark.createDataFrame([(0, 5), (1, 4), (2, 3), (3, 1)], "item_id int, frequency long"),
        4, keys=spark.createDataFrame(list(key.items()), "item_id string, item_index int"))
    got = [ev.score(ev.with_buckets(lists.in_keys(pairs), lists.counts), lists, ks=(1, 2))
           for lists in (by_id, by_key)]
    assert got[0] == got[1]
    assert got[0]["popularity"]["hr@1"] == pytest.approx(2 / 5)  # a -> b and z -> a
    assert got[0]["published"]["hr@1_by_popularity"]["unseen"] == 0.0


def test_coverage_never_exceeds_one(spark):
    pairs = spark.createDataFrame([("a", "b", "head"), ("b", "a", "head")],
                                  PAIRS + ", bucket string")
    # lists may recommend items outside the training items' count: the denominator is fixed
    lists = _lists(spark, [("published", "a", 1, "b"), ("published", "b", 1, "a")],
                   counts=[("a", 3), ("b", 3)], items=2)
    m = ev.score(pairs, lists, ks=(1,))
    assert all(0 <= v["coverage@1"] <= 1 for v in m.values())
    assert m["published"]["coverage@1"] == 1.0


def test_buckets_from_frequency_percentiles(spark):
    counts = spark.createDataFrame([(f"i{n:03d}", 1000 - n) for n in range(200)],
                                   "item_id string, frequency long")
    pairs = spark.createDataFrame([("q", f"i{n:03d}") for n in (0, 1, 2, 19, 20, 199)]
                                  + [("q", "new")], PAIRS)
    tagged = {r.next_item: r.bucket for r in ev.with_buckets(pairs, counts).collect()}
    assert tagged == {"i000": "head", "i001": "head", "i002": "torso", "i019": "torso",
                      "i020": "tail", "i199": "tail", "new": "unseen"}


def test_split_by_session_start(spark):
    t0 = dt.datetime(2026, 1, 1)
    rows = [(i, t0 + dt.timedelta(days=i), ["a", "b", "c"]) for i in range(10)]
    sessions = spark.createDataFrame(rows, "session_id long, start timestamp, items array<string>")
    train, test, cutoff = ev.split_by_start(sessions, fraction=0.2)
    assert train.count() == 8 and test.count() == 2
    # a known count saves the pass that counts; the quantile is taken at its rank
    assert ev.split_by_start(sessions, fraction=0.2, count=10, accuracy=100)[2] == cutoff
    assert ev.split_by_start(sessions, fraction=0.2, count=5)[0].count() == 7
    pairs, total = ev.sample_pairs(ev.session_pairs(test), max_pairs=0, seed=1)
    assert total == 4
    assert sorted(tuple(r) for r in pairs.collect()) == [("a", "b")] * 2 + [("b", "c")] * 2
    all_pairs = ev.session_pairs(sessions)
    capped, total = ev.sample_pairs(all_pairs, max_pairs=8, seed=1)
    assert total == 20 and 0 < capped.count() < 20


METRICS = {"models": {"published": {"hr@10": 0.30}, "popularity": {"hr@10": 0.20},
                      "cooc_knn": {"hr@10": 0.28}}}


@pytest.mark.parametrize(("metrics", "kw", "expected"), [
    (METRICS, {}, None),
    (METRICS, {"min_lift_over_popularity": 1.6}, "published HR@10 0.3000 < 1.6 x popularity"),
    (METRICS, {"min_lift_over_cooc": 1.1}, "published HR@10 0.3000 < 1.1 x cooc_knn HR@10"),
    (METRICS, {"min_hr": 0.5}, "published HR@10 0.3000 < gate.min_hr 0.5"),
    ({"models": {}}, {}, "no HR@10 for the published list"),  # nothing could be scored
    ({"models": {"published": {"hr@20": 0.5}}}, {}, "no HR@10 for the published list"),
    ({"models": {"published": {"hr@10": 0.5}}},
     {"min_lift_over_popularity": 0.0, "min_lift_over_cooc": 1.0}, "no HR@10 for cooc_knn"),
    ({"models": {"published": {"hr@10": 0.5}}}, {}, "no HR@10 for popularity"),
    (None, {}, None),  # evaluation off: nothing to gate
])
def test_gate(metrics, kw, expected):
    args = {"min_lift_over_popularity": 1.0, "min_lift_over_cooc": 0.0, "min_hr": 0.0} | kw
    problem = ev.gate(metrics, ks=(10, 20), **args)
    assert problem == expected if expected is None else expected in problem


def test_gate_judges_the_smallest_cut_off():
    metrics = {"models": {"published": {"hr@5": 0.1, "hr@10": 0.9},
                          "popularity": {"hr@5": 0.2, "hr@10": 0.3}}}
    problem = ev.gate(metrics, ks=(10, 5), min_lift_over_popularity=1.0, min_lift_over_cooc=0.0,
                      min_hr=0.0)
    assert problem.startswith("published HR@5 0.1000 < 1 x popularity HR@5 0.2000")


def _history(values, method="previous_run", status="published"):
    rows = [{"run_date": f"2026-01-{i + 1:02d}", "run_id": f"r{i}", "finished_at": "",
             "status": status, "method": method, "model": "published", "hr_10": v}
            for i, v in enumerate(values)]
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize(("hr", "history", "expected"), [
    (0.30, _history([0.30, 0.32, 0.31]), None),
    (0.20, _history([0.30, 0.32, 0.31]), "published HR@10 0.2000 is 35% below the median "
                                         "0.3100 of the last 3 published run(s)"),
    (0.20, _history([0.9, 0.9, 0.30, 0.32, 0.31]), "below the median 0.3100"),  # last 3 only
    (0.26, _history([0.30, 0.32, 0.31]), None),  # a 16% drop is within the 20% allowed
    (0.20, _history([0.30, 0.32], method="holdout"), None),  # other method: not comparable
    (0.20, _history([0.30, 0.32], status="rejected"), None),  # rejected runs never set the bar
    (0.20, _history([]), None),  # first run
    (None, _history([0.30]), None),  # nothing measured tonight
])
def test_regression_gate(hr, history, expected):
    problem = ev.regression(hr, history, method="previous_run", k=10, max_drop=0.2, runs=3,
                            what="published HR@10")
    assert problem == expected if expected is None else expected in problem


def test_metrics_table_lists_every_model():
    text = ev.metrics_table({"models": {"published": {"hr@10": 0.5}, "popularity": {}}})
    assert "published" in text and "0.5000" in text and "popularity" in text
