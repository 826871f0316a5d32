import datetime as dt
import math

import pytest

from item2vec import evaluate as ev


def test_rank_metrics_hand_computed(spark):
    # ranks of the true next item for 4 test pairs: 1, 3, 12 and missing
    ranks = spark.createDataFrame([(1,), (3,), (12,), (None,)], "rank int")
    row = ranks.agg(*ev.rank_metrics(ranks, (10, 20))).first().asDict()
    assert row["hr@10"] == pytest.approx(2 / 4)
    assert row["mrr@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert row["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert row["hr@20"] == pytest.approx(3 / 4)
    assert row["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 4)
    assert row["ndcg@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(13)) / 4)


def test_score_recommendations_joins_on_prev_and_next(spark):
    pairs = spark.createDataFrame([("a", "b"), ("a", "c"), ("x", "b")],
                                  "prev_item string, next_item string")
    recs = spark.createDataFrame([("a", 1, "c"), ("a", 2, "b"), ("x", 1, "a")],
                                 "item_id string, rank int, rec_item string")
    m = ev.score_recommendations(pairs, recs, ks=(1, 2), catalogue=4)
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["mrr@2"] == pytest.approx((0.5 + 1) / 3)
    assert m["coverage@1"] == pytest.approx(2 / 4)  # {c, a}
    assert m["coverage@2"] == pytest.approx(3 / 4)  # {c, b, a}


def test_popularity_excludes_the_query_item(spark):
    counts = spark.createDataFrame([("a", 5), ("b", 4), ("c", 3), ("d", 1)],
                                   "item_id string, frequency long")
    queries = spark.createDataFrame([("a",), ("d",)], "item_id string")
    rows = sorted(tuple(r) for r in ev.popularity_recs(counts, queries, 2).collect())
    assert rows == [("a", 1, "b"), ("a", 2, "c"), ("d", 1, "a"), ("d", 2, "b")]


def test_popularity_ties_go_to_the_smaller_item_id(spark):
    counts = spark.createDataFrame([("d", 3), ("b", 3), ("c", 3), ("a", 9)],
                                   "item_id string, frequency long")
    queries = spark.createDataFrame([("a",), ("b",)], "item_id string")
    rows = sorted(tuple(r) for r in ev.popularity_recs(counts, queries, 2).collect())
    assert rows == [("a", 1, "b"), ("a", 2, "c"), ("b", 1, "a"), ("b", 2, "c")]


def test_cooccurrence_knn_counts_within_window_and_normalises(spark):
    train = spark.createDataFrame([(1, ["a", "b", "c"]), (2, ["a", "b"]), (3, ["c", "d"])],
                                  "session_id long, items array<string>")
    counts = spark.createDataFrame([("a", 2), ("b", 2), ("c", 2), ("d", 1)],
                                   "item_id string, frequency long")
    queries = spark.createDataFrame([("a",), ("c",)], "item_id string")
    recs = ev.cooccurrence_recs(train, counts, queries, k=5, window=1, alpha=0.5, lam=0.0)
    rows = sorted(tuple(r) for r in recs.collect())
    # a: co(a,b)=2 only (c is 2 positions away, outside window 1)
    # c: co(c,b)=1 -> 1/sqrt(2*2)=0.5 ; co(c,d)=1 -> 1/sqrt(2*1)=0.707: d first
    assert rows == [("a", 1, "b"), ("c", 1, "d"), ("c", 2, "b")]
    wide = ev.cooccurrence_recs(train, counts, queries, k=5, window=2, alpha=0.5, lam=0.0)
    assert ("a", 2, "c") in [tuple(r) for r in wide.collect()]


def test_split_holdout_by_session_start(spark):
    t0 = dt.datetime(2026, 1, 1)
    rows = [(i, t0 + dt.timedelta(days=i), ["a", "b", "c"]) for i in range(10)]
    sessions = spark.createDataFrame(rows, "session_id long, start timestamp, items array<string>")
    h = ev.split_holdout(sessions, test_fraction=0.2, seed=1, max_test_pairs=0)
    assert h.train.count() == 8
    assert sorted(tuple(r) for r in h.pairs.collect()) == [("a", "b")] * 2 + [("b", "c")] * 2
    assert h.info["test_pairs_total"] == 4
    capped = ev.split_holdout(sessions, test_fraction=0.5, seed=1, max_test_pairs=4)
    assert 0 < capped.pairs.count() < 10


def test_metrics_table_lists_every_model():
    text = ev.metrics_table({"models": {"item2vec": {"hr@10": 0.5}, "popularity": {}}})
    assert "item2vec" in text and "0.5000" in text and "popularity" in text


def test_evaluate_job_prints_and_writes_metrics(spark, tmp_path, capsys):
    import json

    from jobs.evaluate import main

    code = main(["--output", str(tmp_path), "--run-date", "2026-11-26",
                 "--set", "sample.users=300", "--set", "sample.items=120",
                 "--set", "train.max_auto_passes=2", "--set", "train.vector_size=16"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cooc_knn" in out and "popularity" in out
    data = json.loads((tmp_path / "metrics.json").read_text())
    models = data["metrics"]["models"]
    assert set(models) == {"item2vec", "popularity", "cooc_knn"}
    assert data["metrics"]["holdout"]["pairs"] > 0
    assert all(0 <= m["hr@10"] <= m["hr@20"] <= 1 for m in models.values())


def test_popularity_buckets_and_hr_by_bucket(spark):
    counts = spark.createDataFrame([(f"i{n:03d}", 1000 - n) for n in range(200)],
                                   "item_id string, frequency long")
    buckets = {r.item_id: r.bucket for r in ev.popularity_buckets(counts).collect()}
    assert [buckets[f"i{n:03d}"] for n in (0, 1, 2, 19, 20, 199)] == [
        "head", "head", "torso", "torso", "tail", "tail"]
    pairs = spark.createDataFrame([("a", "b", "head"), ("a", "c", "tail"), ("x", "b", "head")],
                                  "prev_item string, next_item string, bucket string")
    recs = spark.createDataFrame([("a", 1, "b"), ("x", 3, "c")],
                                 "item_id string, rank int, rec_item string")
    m = ev.score_recommendations(pairs, recs, ks=(1, 2), catalogue=4)
    assert m["hr@1_by_popularity"] == {"head": 0.5, "tail": 0.0}
