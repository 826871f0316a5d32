"""Evaluation: what a team compares before trusting the lists, scored on the same pairs.

Every model predicts each next item of a test session from the previous one, from its list for
that item: the published list (``published``), the embedding alone (``embedding``), item
co-occurrence kNN (``cooc_knn``), sequential rules (``sequential_rules``) and ``popularity``.
All are scored on the same pairs: every consecutive pair of a test session (a query item with
no list is a miss), with HR, MRR and NDCG at each cut-off, HR at the smallest cut-off by
popularity bucket of the item to predict, and catalogue coverage (distinct recommended items
over the distinct training items, the same denominator for every model).

Two methods:
- ``previous_run``: the lists an earlier run published (and the reference lists it kept beside
  them) scored on the sessions that started after its date: what was served, scored on what
  users did next. No training at all (progressive validation).
- ``holdout``: the latest ``test_fraction`` of this run's sessions is the test set; the lists
  are built again, by the caller's ``build``, from the earlier sessions only.

Everything runs in Spark; only metric numbers come back to the driver.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from item2vec.corpus import uniform
from item2vec.errors import BadInput
from item2vec.events import ITEM
from item2vec.progress import Progress
from item2vec.sessions import ITEMS, SESSION_ID, START
from item2vec.vocabulary import FREQUENCY, INDEX

PREV, NEXT, RANK, REC, RECS, BUCKET, MODEL = (
    "prev_item", "next_item", "rank", "rec_item", "rec_items", "bucket", "model")
MODELS = ("published", "embedding", "cooc_knn", "sequential_rules", "popularity")
REFERENCE_MODELS = ("embedding", "cooc_knn", "sequential_rules")
# Popularity buckets of the item to predict, by training frequency: head = above the 99th
# percentile of training items, torso = above the 90th, tail = the rest; "unseen" = never in
# training (no model can recommend it).
BUCKETS = (("head", 0.99), ("torso", 0.9))


@dataclass
class Lists:
    """What the models of one training part recommend, ready to be scored."""

    # model, item_id, rec_items: each model's list for an item, in rank order, at most the
    # largest cut-off long (published + reference models; see lists_from_entries)
    lists: DataFrame
    popular: DataFrame  # rank, rec_item: the k + 1 most frequent training items
    counts: DataFrame  # item_id, frequency over the training part
    items: int  # distinct training items (the coverage denominator)
    release: Callable[[], None] = lambda: None  # frees what building the lists cached
    # (item_id, item_index): when given, the frames above name items by the run's catalogue
    # index, which joins and compares faster than string ids; the pairs to score are mapped
    # onto it first (in_keys)
    keys: DataFrame | None = None

    def in_keys(self, pairs: DataFrame) -> DataFrame:
        """(prev_item, next_item) ids -> the same pairs named as the lists name items. An item
        the lists' training part never saw gets a null key: no list names it, so the pair
        counts as a miss for every model (and as "unseen" by popularity bucket)."""
        if self.keys is None:
            return pairs
        prev = self.keys.select(F.col(ITEM).alias(PREV), F.col(INDEX).alias("_prev"))
        nxt = self.keys.select(F.col(ITEM).alias(NEXT), F.col(INDEX).alias("_next"))
        return (pairs.join(prev, PREV, "left").join(nxt, NEXT, "left")
                .select(F.col("_prev").alias(PREV), F.col("_next").alias(NEXT)))


def lists_from_entries(entries: DataFrame) -> DataFrame:
    """(model, item_id, rank, rec_item) rows, one per list entry -> Lists.lists rows."""
    entry = F.sort_array(F.collect_list(F.struct(RANK, REC)))
    return entries.groupBy(MODEL, ITEM).agg(F.transform(entry, lambda e: e[REC]).alias(RECS))


Build = Callable[[DataFrame, DataFrame], Lists]  # (training sessions, query items) -> Lists


def session_pairs(sessions: DataFrame, *, items: str = ITEMS) -> DataFrame:
    """(session_id, pos, prev_item, next_item): every consecutive pair of every session
    (``items`` names the sessions' array column)."""
    n = F.size(items)
    zipped = F.arrays_zip(F.slice(items, 1, n - 1).alias(PREV),
                          F.slice(items, 2, n - 1).alias(NEXT))
    return (sessions.select(SESSION_ID, F.posexplode(zipped).alias("pos", "p"))
            .select(SESSION_ID, "pos", F.col("p")[PREV].alias(PREV),
                    F.col("p")[NEXT].alias(NEXT)))


def sample_pairs(pairs: DataFrame, *, max_pairs: int, seed: int) -> tuple[DataFrame, int]:
    """(pairs capped at about ``max_pairs`` by a deterministic hash sample, total pairs)."""
    total = pairs.count()
    if max_pairs and total > max_pairs:
        keep = max_pairs / total
        pairs = pairs.where(uniform(F.lit(seed), F.col(SESSION_ID), F.col("pos")) < keep)
    return pairs.select(PREV, NEXT), total


# percentile_approx accuracy: exact up to this many sessions, 1/ACCURACY relative rank error above
SPLIT_ACCURACY = 1_000_000


def split_by_start(sessions: DataFrame, *, fraction: float, count: int | None = None,
                   accuracy: int = SPLIT_ACCURACY) -> tuple[DataFrame, DataFrame, Any]:
    """(earlier, later, cutoff): the first floor((1 - fraction) x N) sessions by start time are
    ``earlier``, the rest ``later`` (ties on the cutoff instant stay earlier). The cutoff is a
    quantile of the start times: no global sort. ``count`` (N, when the caller knows it) saves
    a pass; ``accuracy`` trades exactness above that many sessions for a cheaper pass."""
    n = sessions.count() if count is None else count
    # the value at rank floor((1 - fraction) N); half a rank below it keeps rounding off it
    first = max(math.floor((1.0 - fraction) * n), 1)  # at least one session to learn from
    q = (first - 0.5) / n if n else 1.0 - fraction
    cutoff = sessions.select(F.percentile_approx(START, q, accuracy)).first()[0]
    if cutoff is None:
        raise BadInput("evaluation: no sessions to split")
    return (sessions.where(F.col(START) <= F.lit(cutoff)),
            sessions.where(F.col(START) > F.lit(cutoff)), cutoff)


RANK_METRICS = ("hr", "mrr", "ndcg")


def _per_pair(ks: tuple[int, ...]) -> list[tuple[str, Column]]:
    """(name, value per pair) of every metric at every cut-off, over a ``rank`` column."""
    rank = F.col(RANK)
    cols = []
    for k in ks:
        hit = _hit(k)
        values = (F.lit(1.0), 1.0 / rank, 1.0 / F.log2(rank + 1))
        cols += [(f"{name}@{k}", F.when(hit, value).otherwise(0.0))
                 for name, value in zip(RANK_METRICS, values, strict=True)]
    return cols


def rank_metrics(ks: tuple[int, ...]) -> list[Column]:
    """Aggregate columns HR@k, MRR@k, NDCG@k over a ``rank`` column (null = not in the list)."""
    return [F.avg(value).alias(name) for name, value in _per_pair(ks)]


def rank_sums(ks: tuple[int, ...]) -> list[Column]:
    """rank_metrics' sums (divide by the pairs): what adds up over groups of pairs."""
    return [F.sum(value).alias(name) for name, value in _per_pair(ks)]


def _hit(k: int) -> Column:
    """The true next item is in the list at rank <= k."""
    return F.col(RANK).isNotNull() & (F.col(RANK) <= k)


def with_buckets(pairs: DataFrame, counts: DataFrame) -> DataFrame:
    """Tag each pair with the popularity bucket of its next item (see BUCKETS). Thresholds
    come from an approximate percentile of the training frequencies: no global sort."""
    quantiles = [q for _, q in BUCKETS]
    limits = counts.select(F.percentile_approx(FREQUENCY, quantiles, 10000)).first()[0] or []
    bucket = F.lit("tail")
    for (name, _), limit in reversed(list(zip(BUCKETS, limits, strict=True))):
        bucket = F.when(F.col(FREQUENCY) > F.lit(limit), F.lit(name)).otherwise(bucket)
    bucket = F.when(F.col(FREQUENCY).isNull(), F.lit("unseen")).otherwise(bucket)
    freq = counts.select(F.col(ITEM).alias(NEXT), FREQUENCY)
    return pairs.join(freq, NEXT, "left").select(PREV, NEXT, bucket.alias(BUCKET))


def score(pairs: DataFrame, lists: Lists, *, ks: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Metrics of every model on ``pairs`` (prev_item, next_item, bucket), in MODELS order.

    One join of the pairs with the lists of their query items ranks the true next item in every
    list model's list (its position in the list's array: no list is exploded for it);
    popularity's rank comes from its one shared list (the query item itself is skipped, as the
    others never list it). Two Spark jobs: coverage, then every metric in one aggregation.
    """
    spark = pairs.sparkSession
    ks = tuple(sorted(set(ks)))
    pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK_DESER)
    queries = pairs.select(F.col(PREV).alias(ITEM)).distinct()
    # the lists of the query items only; read by both jobs, and the first fills both caches
    lists_q = lists.lists.join(queries, ITEM, "left_semi").persist(
        StorageLevel.MEMORY_AND_DISK_DESER)
    try:
        coverage = _coverage(lists_q, ks)
        names = [m for m in MODELS if m != "popularity"]
        models = spark.createDataFrame([(m,) for m in names], f"{MODEL} string")
        position = F.array_position(RECS, F.col(NEXT))  # 0: not listed; null: next unseen
        listed = (pairs.crossJoin(models)
                  .join(lists_q.withColumnRenamed(ITEM, PREV), [MODEL, PREV], "left")
                  .select(MODEL, PREV, NEXT, BUCKET,
                          F.when(position > 0, position).cast("int").alias(RANK),
                          F.when(F.size(RECS) > 0, 1).alias("_answered"),
                          F.lit(None).cast("int").alias("_rp")))
        pop = lists.popular
        pop_next = pop.select(F.col(REC).alias(NEXT), F.col(RANK).alias("_rn"))
        pop_prev = pop.select(F.col(REC).alias(PREV), F.col(RANK).alias("_rp"))
        effective = F.col("_rn") - F.when(F.col("_rp") < F.col("_rn"), 1).otherwise(0)
        popular = (pairs.join(pop_next, NEXT, "left").join(pop_prev, PREV, "left")
                   .select(F.lit("popularity").alias(MODEL), PREV, NEXT, BUCKET,
                           F.when(F.col(PREV).isNull() | (F.col(PREV) != F.col(NEXT)),
                                  effective).cast("int").alias(RANK),
                           F.lit(1).alias("_answered"), F.col("_rp").cast("int")))
        # One aggregation per (model, bucket) of counts and sums; a model's metrics add its
        # buckets up (the joins above run once). _rp: the best rank popularity's list gives a
        # query item (popularity's coverage depends on it).
        rows = listed.unionByName(popular).groupBy(MODEL, BUCKET).agg(
            F.count(F.lit(1)).alias("_pairs"), F.count("_answered").alias("_answered"),
            F.min("_rp").alias("_rp"), *rank_sums(ks)).collect()
        first = min(ks)
        coverage |= _popularity_coverage(lists.popular, ks, min(
            (r["_rp"] for r in rows if r["_rp"] is not None), default=None))
        out: dict[str, dict[str, Any]] = {}
        for model in sorted({r[MODEL] for r in rows}, key=MODELS.index):
            mine = sorted((r for r in rows if r[MODEL] == model), key=lambda r: r[BUCKET])
            n = sum(r["_pairs"] for r in mine)
            m = {f"{name}@{k}": round(sum(r[f"{name}@{k}"] for r in mine) / n, 6)
                 for k in ks for name in RANK_METRICS}
            m["pair_coverage"] = round(sum(r["_answered"] for r in mine) / n, 6)
            m[f"hr@{first}_by_popularity"] = {r[BUCKET]: round(r[f"hr@{first}"] / r["_pairs"], 6)
                                              for r in mine}
            for k in ks:
                distinct = coverage.get((model, k), 0)
                m[f"coverage@{k}"] = round(distinct / lists.items, 6) if lists.items else 0.0
            out[model] = m
        return out
    finally:
        lists_q.unpersist()
        pairs.unpersist()


def _coverage(lists_q: DataFrame, ks: tuple[int, ...]) -> dict[tuple[str, int], int]:
    """(model, k) -> distinct items the list models recommend at rank <= k to the queries."""
    entry = F.posexplode(RECS).alias("_pos", REC)
    # each recommended item once per model, at its best rank: then counting is a plain sum
    best = (lists_q.select(MODEL, entry).groupBy(MODEL, REC)
            .agg((F.min("_pos") + 1).alias(RANK)))
    aggs = [F.count(F.when(F.col(RANK) <= k, 1)).alias(str(k)) for k in ks]
    return {(r[MODEL], k): int(r[str(k)])
            for r in best.groupBy(MODEL).agg(*aggs).collect() for k in ks}


def _popularity_coverage(popular: DataFrame, ks: tuple[int, ...],
                         best_query_rank: int | None) -> dict[tuple[str, int], int]:
    """Popularity shows every query the top k, and item k + 1 to a query that is in the top k
    (``best_query_rank``: the best rank of a query item in the list, None if none is)."""
    top = [r[REC] for r in sorted(popular.collect(), key=lambda r: r[RANK])]  # k + 1 rows
    out = {}
    for k in ks:
        shown = set(top[:k])
        if best_query_rank is not None and best_query_rank <= k and len(top) > k:
            shown.add(top[k])
        out[("popularity", k)] = len(shown)
    return out


def holdout(sessions: DataFrame, *, build: Build, test_fraction: float, max_test_pairs: int,
            seed: int, ks: tuple[int, ...], progress: Progress) -> dict[str, Any]:
    """The manifest's ``metrics`` for method "holdout": lists built from the earlier sessions,
    scored on the pairs of the latest ``test_fraction``."""
    with progress.stage("eval split"):
        train, test, cutoff = split_by_start(sessions, fraction=test_fraction)
        train = train.persist(StorageLevel.MEMORY_AND_DISK_DESER)
        pairs, total = sample_pairs(session_pairs(test), max_pairs=max_test_pairs, seed=seed)
        pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK_DESER)
        queries = pairs.select(F.col(PREV).alias(ITEM)).distinct()
    lists = None
    try:
        lists = build(train, queries)
        with progress.stage("eval score"):
            scored = with_buckets(lists.in_keys(pairs), lists.counts)
            models = score(scored, lists, ks=ks) if total else {}
        info = {"cutoff": _iso(cutoff), "test_fraction": test_fraction,
                "test_pairs_total": total, "pairs": pairs.count() if total else 0}
        return {"method": "holdout", "evaluated_run": None, "pairs": info["pairs"],
                "holdout": info, "models": models}
    finally:
        if lists is not None:
            lists.release()
        pairs.unpersist()
        train.unpersist()


def previous_run(sessions: DataFrame, lists: Lists, *, since: dt.datetime, evaluated_run: str,
                 max_test_pairs: int, seed: int, ks: tuple[int, ...],
                 progress: Progress) -> dict[str, Any]:
    """The manifest's ``metrics`` for method "previous_run": ``lists`` (what the run
    ``evaluated_run`` published and kept) scored on the sessions that started at or after
    ``since`` (the end of that run's date)."""
    with progress.stage("eval score"):
        later = sessions.where(F.col(START) >= F.lit(since))
        pairs, total = sample_pairs(session_pairs(later), max_pairs=max_test_pairs, seed=seed)
        pairs = pairs.persist(StorageLevel.MEMORY_AND_DISK_DESER)
        try:
            scored = with_buckets(lists.in_keys(pairs), lists.counts)
            models = score(scored, lists, ks=ks) if total else {}
            info = {"since": _iso(since), "test_pairs_total": total,
                    "pairs": pairs.count() if total else 0}
        finally:
            pairs.unpersist()
    return {"method": "previous_run", "evaluated_run": evaluated_run, "pairs": info["pairs"],
            "test": info, "models": models}


def gate(metrics: dict[str, Any] | None, *, ks: tuple[int, ...], min_lift_over_popularity: float,
         min_lift_over_cooc: float, min_hr: float) -> str | None:
    """None when the published list may be published, else why not. Judged at the smallest
    cut-off; missing metrics fail (an evaluation that scored nothing proves nothing)."""
    if metrics is None:
        return None
    k = min(ks)
    models = metrics.get("models") or {}
    hr = models.get("published", {}).get(f"hr@{k}")
    if hr is None:
        return f"no HR@{k} for the published list (no test pairs could be scored)"
    for name, lift in (("popularity", min_lift_over_popularity),
                       ("cooc_knn", min_lift_over_cooc)):
        other = models.get(name, {}).get(f"hr@{k}")
        if lift and other is None:
            return f"no HR@{k} for {name} to compare with"
        if lift and hr < lift * other:
            return f"published HR@{k} {hr:.4f} < {lift:g} x {name} HR@{k} {other:.4f}"
    if min_hr and hr < min_hr:
        return f"published HR@{k} {hr:.4f} < gate.min_hr {min_hr:g}"
    return None


def regression(hr: float | None, history: pa.Table, *, method: str, k: int, max_drop: float,
               runs: int, what: str) -> str | None:
    """None unless ``hr`` (the published list's HR@k as ``method`` measured it) dropped by
    more than ``max_drop`` (a share) below the median of the last ``runs`` published runs
    measured the same way in ``history`` (publish.HISTORY_SCHEMA rows)."""
    column = f"hr_{k}"
    if hr is None or not max_drop or column not in history.column_names:
        return None
    rows = [r for r in history.to_pylist()
            if r.get("model") == "published" and r.get("status") == "published"
            and r.get("method") == method and r.get(column) is not None]
    rows.sort(key=lambda r: (r["run_date"], r.get("finished_at") or ""))
    recent = [r[column] for r in rows[-runs:]]
    if not recent:
        return None
    median = statistics.median(recent)
    if median > 0 and hr < (1.0 - max_drop) * median:
        return (f"{what} {hr:.4f} is {1.0 - hr / median:.0%} below the median {median:.4f} of "
                f"the last {len(recent)} published run(s) (gate.max_drop_vs_previous "
                f"{max_drop:.0%})")
    return None


def summary_line(metrics: dict[str, Any]) -> str:
    models = metrics.get("models", {})
    parts = [f"{name} HR@10={m.get('hr@10', float('nan')):.4f}" for name, m in models.items()]
    return f"{metrics.get('method')}: {metrics.get('pairs', 0):,} test pairs; " + ", ".join(parts)


def metrics_table(metrics: dict[str, Any], columns: tuple[str, ...] = (
        "hr@10", "mrr@10", "hr@20", "mrr@20", "coverage@20")) -> str:
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
