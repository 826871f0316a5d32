"""Offline evaluation on a time-based holdout, with baselines computed on the same split.

The latest sessions (by start time) are the test set; a separate model is trained on the
earlier sessions only, and every model predicts each next item of a test session from the
previous one. Models: item2vec (this job's config), popularity, and item co-occurrence kNN
normalised like session-rec's item-kNN: co(i,j) / ((n_i + lambda)^alpha (n_j + lambda)^(1-alpha)).
All of it runs in Spark; only the metric numbers come back to the driver.

Test pairs count when their previous item is in the item2vec training vocabulary (the model
can answer them); ``pair_coverage`` says what share of all test pairs that is.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from item2vec import similar as similar_mod
from item2vec.config import Config
from item2vec.corpus import uniform
from item2vec.errors import BadInput
from item2vec.events import ITEM
from item2vec.progress import Progress
from item2vec.sessions import ITEMS, SESSION_ID, START
from item2vec.vocabulary import FREQUENCY, INDEX

PREV, NEXT, RANK, REC, BUCKET = "prev_item", "next_item", "rank", "rec_item", "bucket"
BUCKETS = (("head", 0.01), ("torso", 0.1), ("tail", 1.0))


@dataclass
class Holdout:
    """A split: training sessions, test next-item pairs, and what the split was."""

    train: DataFrame  # sessions
    pairs: DataFrame  # prev_item, next_item
    info: dict[str, Any]
    counts: DataFrame | None = None  # item_id, frequency over ``train`` (set by prepare)


def split_holdout(sessions: DataFrame, *, test_fraction: float, seed: int,
                  max_test_pairs: int) -> Holdout:
    """Latest ``test_fraction`` of sessions by start time -> test pairs; the rest -> training."""
    cutoff = sessions.select(F.percentile_approx(START, 1.0 - test_fraction, 10000)).first()[0]
    if cutoff is None:
        raise BadInput("evaluation: no sessions to split")
    train = sessions.where(F.col(START) <= F.lit(cutoff))
    test = sessions.where(F.col(START) > F.lit(cutoff))
    n = F.size(ITEMS)
    zipped = F.arrays_zip(F.slice(ITEMS, 1, n - 1).alias(PREV), F.slice(ITEMS, 2, n - 1)
                          .alias(NEXT))
    pairs = (test.select(SESSION_ID, F.posexplode(zipped).alias("pos", "p"))
             .select(SESSION_ID, "pos", F.col("p")[PREV].alias(PREV), F.col("p")[NEXT].alias(NEXT)))
    total = pairs.count()
    if max_test_pairs and total > max_test_pairs:
        keep = max_test_pairs / total
        pairs = pairs.where(uniform(F.lit(seed), F.col(SESSION_ID), F.col("pos")) < keep)
    info = {"cutoff": _iso(cutoff), "test_fraction": test_fraction, "test_pairs_total": total}
    return Holdout(train, pairs.select(PREV, NEXT), info)


def rank_metrics(ranks: DataFrame, ks: tuple[int, ...]) -> list[Column]:
    """Aggregate columns HR@k, MRR@k, NDCG@k over a ``rank`` column (null = not in the list)."""
    rank = F.col(RANK)
    cols = []
    for k in ks:
        hit = _hit(k)
        cols += [F.avg(F.when(hit, 1.0).otherwise(0.0)).alias(f"hr@{k}"),
                 F.avg(F.when(hit, 1.0 / rank).otherwise(0.0)).alias(f"mrr@{k}"),
                 F.avg(F.when(hit, 1.0 / F.log2(rank + 1)).otherwise(0.0)).alias(f"ndcg@{k}")]
    return cols


def _hit(k: int) -> Column:
    """The true next item is in the list at rank <= k."""
    return F.col(RANK).isNotNull() & (F.col(RANK) <= k)


def score_recommendations(pairs: DataFrame, recs: DataFrame, *, ks: tuple[int, ...],
                          catalogue: int) -> dict[str, float]:
    """Metrics for ``recs`` (item_id, rank, rec_item) on ``pairs`` (prev_item, next_item).

    ``recs`` is computed once and cached (it is small: queries x k rows) because three
    aggregations read it; recomputing a co-occurrence baseline or a top-k per aggregation
    used to dominate the evaluation of large logs.
    """
    recs = recs.select(ITEM, RANK, REC).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        joined = pairs.join(recs.select(F.col(ITEM).alias(PREV), F.col(REC).alias(NEXT), RANK),
                            [PREV, NEXT], "left")
        row = joined.agg(*rank_metrics(joined, ks)).first().asDict()
        out: dict[str, Any] = {k: round(float(v), 6) for k, v in row.items()}
        if BUCKET in pairs.columns:  # HR at the first cut-off by popularity of the item to predict
            hit = F.when(_hit(min(ks)), 1.0).otherwise(0.0)
            rows = joined.groupBy(BUCKET).agg(F.avg(hit).alias("hr")).collect()
            out[f"hr@{min(ks)}_by_popularity"] = {
                r[BUCKET]: round(float(r["hr"]), 6) for r in sorted(rows, key=lambda r: r[BUCKET])}
        distinct = recs.agg(*[F.count_distinct(F.when(F.col(RANK) <= k, F.col(REC))).alias(str(k))
                              for k in ks]).first()
        for k in ks:
            out[f"coverage@{k}"] = round(distinct[str(k)] / catalogue, 6) if catalogue else 0.0
        return out
    finally:
        recs.unpersist()


def popularity_buckets(train_counts: DataFrame) -> DataFrame:
    """(item_id, bucket): head = the 1 % most frequent training items, torso = the next 9 %,
    tail = the rest; items never seen in training are "unseen" where this is joined."""
    order = Window.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM))
    share = F.percent_rank().over(order)
    bucket = F.lit(BUCKETS[-1][0])
    for name, upper in reversed(BUCKETS[:-1]):
        bucket = F.when(share < upper, F.lit(name)).otherwise(bucket)
    return train_counts.select(ITEM, bucket.alias(BUCKET))


def popularity_recs(train_counts: DataFrame, queries: DataFrame, k: int) -> DataFrame:
    """The k most frequent training items, minus the query item itself."""
    top = (train_counts.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM))
           .limit(k + 1).select(F.col(ITEM).alias(REC), F.col(FREQUENCY)))
    return _top_k_by(queries.crossJoin(F.broadcast(top)).where(F.col(ITEM) != F.col(REC)),
                     F.col(FREQUENCY), k)


def _top_k_by(candidates: DataFrame, score: Column, k: int) -> DataFrame:
    """(item_id, rank, rec_item): the ``k`` best ``rec_item`` per item by score desc, then
    rec_item asc. A bounded top-k aggregate (partial aggregation on the map side) instead of a
    window sort of every candidate pair."""
    best = F.min_by(F.col(REC), F.struct(-score, F.col(REC)), k)
    return (candidates.groupBy(ITEM).agg(best.alias("top"))
            .select(ITEM, F.posexplode("top").alias("pos", REC))
            .select(ITEM, (F.col("pos") + 1).cast("int").alias(RANK), REC))


def cooccurrence_recs(train: DataFrame, train_counts: DataFrame, queries: DataFrame, *,
                      k: int, window: int, alpha: float, lam: float) -> DataFrame:
    """Item-kNN on co-occurrence within ``window`` positions of a training session."""
    n = F.size(ITEMS)
    shifted = F.flatten(F.transform(F.sequence(F.lit(1), F.lit(window)), lambda d: F.arrays_zip(
        F.slice(ITEMS, 1, F.greatest(n - d, F.lit(0))).alias("a"),
        F.slice(ITEMS, d + 1, F.greatest(n - d, F.lit(0))).alias("b"))))
    pairs = train.where(n >= 2).select(F.explode(shifted).alias("p")).select(
        F.col("p")["a"].alias("a"), F.col("p")["b"].alias("b")).where(F.col("a") != F.col("b"))
    both = pairs.select(F.col("a").alias(ITEM), F.col("b").alias(REC)).unionByName(
        pairs.select(F.col("b").alias(ITEM), F.col("a").alias(REC)))
    both = both.join(F.broadcast(queries), ITEM)
    co = both.groupBy(ITEM, REC).agg(F.count(F.lit(1)).alias("co"))
    n_i = train_counts.select(F.col(ITEM), F.col(FREQUENCY).alias("n_i"))
    n_j = train_counts.select(F.col(ITEM).alias(REC), F.col(FREQUENCY).alias("n_j"))
    scored = (co.join(F.broadcast(n_i), ITEM).join(F.broadcast(n_j), REC)
              .withColumn("s", F.col("co") / (F.pow(F.col("n_i") + lam, alpha)
                                              * F.pow(F.col("n_j") + lam, 1 - alpha))))
    return _top_k_by(scored, F.col("s"), k)


def item2vec_recs(spark: SparkSession, model: Any, queries: DataFrame, k: int,
                  cfg: Config) -> DataFrame:
    """Top-k from a trained model for the query items only."""
    idx = (queries.join(model.vocab, ITEM).select(INDEX).toArrow().column(INDEX)
           .to_numpy())
    pairs = similar_mod.top_k_similar(spark, model.matrix, k=k,
                                      block_bytes=cfg.similar.block_bytes,
                                      partitions=cfg.similar.partitions, queries=idx)
    return similar_mod.with_item_ids(pairs, model.vocab).select(
        ITEM, RANK, F.col(similar_mod.SIMILAR_ITEM).alias(REC))


def train_counts_of(train: DataFrame) -> DataFrame:
    """(item_id, frequency) over the training sessions."""
    return (train.select(F.explode(ITEMS).alias(ITEM)).groupBy(ITEM)
            .agg(F.count(F.lit(1)).alias(FREQUENCY)))


def prepare(spark: SparkSession, sessions: DataFrame, cfg: Config) -> Holdout:
    """Split once (cached), with training item counts, tagging each test pair with its next
    item's popularity bucket."""
    e = cfg.evaluate
    holdout = split_holdout(sessions, test_fraction=e.test_fraction, seed=cfg.train.seed,
                            max_test_pairs=e.max_test_pairs)
    holdout.train = holdout.train.persist(StorageLevel.MEMORY_AND_DISK)
    holdout.counts = train_counts_of(holdout.train).persist()
    buckets = popularity_buckets(holdout.counts).withColumnRenamed(ITEM, NEXT)
    holdout.pairs = (holdout.pairs.join(F.broadcast(buckets), NEXT, "left")
                     .fillna({BUCKET: "unseen"})
                     .persist(StorageLevel.MEMORY_AND_DISK))
    return holdout


def evaluate_item2vec(spark: SparkSession, holdout: Holdout, cfg: Config, progress: Progress,
                      *, label: str = "eval ") -> tuple[dict[str, float], DataFrame, int]:
    """Train on the holdout's training part; return (metrics, answerable pairs, catalogue)."""
    from item2vec.pipeline import train_model  # the same stages as the published model

    ks = tuple(sorted(set(cfg.evaluate.ks)))
    model = train_model(spark, holdout.train, cfg, progress, label=label)
    with progress.stage(f"{label}item2vec top-k"):
        vocab_ids = model.vocab.select(ITEM)
        pairs = holdout.pairs.join(F.broadcast(vocab_ids.withColumnRenamed(ITEM, PREV)), PREV)
        queries = pairs.select(F.col(PREV).alias(ITEM)).distinct()
        catalogue = int(model.matrix.shape[0])
        recs = item2vec_recs(spark, model, queries, max(ks), cfg)
        metrics = score_recommendations(pairs, recs, ks=ks, catalogue=catalogue)
    model.item_vectors.unpersist()
    return metrics, pairs, catalogue


def baseline_metrics(holdout: Holdout, pairs: DataFrame, catalogue: int, cfg: Config,
                     progress: Progress, *, label: str = "eval ") -> dict[str, dict[str, Any]]:
    """Popularity and co-occurrence kNN on the same answerable ``pairs``, one timed stage each
    (``<label><name>`` in ``progress.timings``)."""
    e = cfg.evaluate
    ks = tuple(sorted(set(e.ks)))
    queries = pairs.select(F.col(PREV).alias(ITEM)).distinct()
    recommenders = {
        "popularity": lambda: popularity_recs(holdout.counts, queries, max(ks)),
        "cooc_knn": lambda: cooccurrence_recs(holdout.train, holdout.counts, queries, k=max(ks),
                                              window=e.cooc_window, alpha=e.cooc_alpha,
                                              lam=e.cooc_lambda)}
    out = {}
    for name, make in recommenders.items():
        with progress.stage(f"{label}{name}"):
            out[name] = score_recommendations(pairs, make(), ks=ks, catalogue=catalogue)
    return out


def evaluate(spark: SparkSession, sessions: DataFrame, cfg: Config,
             progress: Progress) -> dict[str, Any]:
    """The manifest's ``metrics``: holdout description and per-model metrics."""
    with progress.stage("eval split"):
        holdout = prepare(spark, sessions, cfg)
    pairs = None
    try:
        model_metrics, pairs, catalogue = evaluate_item2vec(spark, holdout, cfg, progress)
        pairs = pairs.persist()
        answerable = pairs.count()
        if not answerable:
            return {"holdout": holdout.info | {"pairs": 0}, "models": {}}
        models = {"item2vec": model_metrics,
                  **baseline_metrics(holdout, pairs, catalogue, cfg, progress)}
        total = holdout.info["test_pairs_total"]
        info = holdout.info | {"pairs": answerable,
                               "pair_coverage": round(answerable / total, 6) if total else 0.0}
        return {"holdout": info, "models": models}
    finally:
        if pairs is not None:
            pairs.unpersist()
        holdout.train.unpersist()
        holdout.pairs.unpersist()
        holdout.counts.unpersist()


def summary_line(metrics: dict[str, Any]) -> str:
    models = metrics.get("models", {})
    parts = [f"{name} HR@10={m.get('hr@10', float('nan')):.4f}" for name, m in models.items()]
    return f"{metrics.get('holdout', {}).get('pairs', 0):,} test pairs; " + ", ".join(parts)


def metrics_table(metrics: dict[str, Any], columns: tuple[str, ...] = (
        "hr@10", "mrr@10", "ndcg@10", "hr@20", "coverage@10")) -> str:
    """Plain-text table of the per-model metrics, for the terminal."""
    models = metrics.get("models", {})
    if not models:
        return "(no metrics)"
    width = max(len(n) for n in models) + 2
    lines = ["model".ljust(width) + "".join(c.rjust(12) for c in columns)]
    for name, m in models.items():
        cells = "".join(_fmt(m.get(c)).rjust(12) for c in columns)
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.4f}"


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
