"""Co-occurrence evidence: which items appear near each other in training sessions, how often,
and in which order; and the reference lists built from it alone.

Item co-occurrence counts and sequential rules (forward transitions weighted 1 / distance) are
what a team computes with a few lines of SQL, and on real click logs they predict the next
item better than embeddings do (Ludewig & Jannach). The hybrid ranking (item2vec.rank) uses the
same evidence, and the evaluation scores these lists as the baselines to beat.

Evidence is counted once per run, for every pair of distinct items at most a few positions
apart in a session, as the handful of sums the ranking and the baselines read (symmetric
co-occurrences within a window, forward transitions weighted 1/d or 1/d^2). Pairs are generated
with array functions per session, forward only, and aggregated with one shuffle; both sides of
a pair are derived from that aggregate (``oriented``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from item2vec.events import ITEM
from item2vec.sessions import ITEMS
from item2vec.vocabulary import FREQUENCY

OTHER = "other_id"
# What the ranking reads of a pair's evidence (see pair_evidence); "near" and "near_c" count
# both orders of the pair once oriented.
FEATURES = ("near", "fwd1", "fwd2", "near_c", "rules")
SYMMETRIC = ("near", "near_c")
RANK, REC, SCORE = "rank", "rec_item", "score"
FIT = "_fit"  # sessions column: true for the part that fits the evidence used to tune weights


def item_counts(sessions: DataFrame) -> DataFrame:
    """(item_id, frequency): occurrences of every item in the training sessions."""
    return (sessions.select(F.explode(ITEMS).alias(ITEM)).groupBy(ITEM)
            .agg(F.count(F.lit(1)).alias(FREQUENCY)))


@dataclass(frozen=True)
class Windows:
    """The windows (in positions) the evidence is counted for: the hybrid's symmetric and
    forward windows, and the baselines' (item-kNN co-occurrence, sequential rules)."""

    near: int
    forward: int
    cooc: int
    rules: int

    @property
    def longest(self) -> int:
        return max(self.near, self.forward, self.cooc, self.rules)


def pair_evidence(sessions: DataFrame, *, windows: Windows, fit: Sequence[str] = (),
                  items: str = ITEMS, features: Sequence[str] = FEATURES) -> DataFrame:
    """(item_id, other_id, *features, *fit_features) per ordered pair: other_id came d
    positions after item_id in a session, d <= windows.longest, summed over sessions as

    - ``near``: occurrences with d <= windows.near; ``near_c``: with d <= windows.cooc
      (each order's row counts its own direction; ``oriented`` adds the two),
    - ``fwd1`` / ``fwd2``: sum of 1/d and 1/d^2 over d <= windows.forward,
    - ``rules``: sum of 1/d over d <= windows.rules.

    Only forward pairs are emitted and aggregated (one row per pair occurrence, one shuffle):
    half the rows of counting both orders, which ``oriented`` derives from the aggregate.
    ``items`` names the sessions' array column (ids or catalogue keys). ``features`` (a subset
    of FEATURES): the sums to count, when not all are read. ``fit`` (a subset of ``features``):
    those also summed over the sessions whose ``_fit`` is true (as ``<feature>_fit``), in the
    same aggregation.
    """
    n, w = F.size(items), windows.longest
    # One row per (position, distance): a generator and array lookups that Spark compiles,
    # where higher-order functions over arrays of structs would be interpreted row by row.
    slot = F.explode(F.sequence(F.lit(0), n * w - 1)).alias("_slot")
    pos = (F.col("_slot") / w).cast("int") + 1  # 1-based, as element_at wants
    gap = F.col("_slot") % w + 1
    rows = (sessions.where(n >= 2)
            .select(items, *([FIT] if fit else []), slot)
            .where(pos + gap <= n)
            .select(F.element_at(items, pos).alias(ITEM),
                    F.element_at(items, pos + gap).alias(OTHER),
                    gap.cast("double").alias("d"), *([FIT] if fit else []))
            .where(F.col(ITEM) != F.col(OTHER)))
    d = F.col("d")
    weights = {"near": F.when(d <= windows.near, 1.0),
               "fwd1": F.when(d <= windows.forward, 1 / d),
               "fwd2": F.when(d <= windows.forward, 1 / (d * d)),
               "near_c": F.when(d <= windows.cooc, 1.0),
               "rules": F.when(d <= windows.rules, 1 / d)}
    features = [f for f in FEATURES if f in features]
    aggs = [F.coalesce(F.sum(weights[f]), F.lit(0.0)).alias(f) for f in features]
    aggs += [F.coalesce(F.sum(F.when(F.col(FIT), weights[f])), F.lit(0.0)).alias(f + FIT)
             for f in features if f in fit]
    return rows.groupBy(ITEM, OTHER).agg(*aggs)


def oriented(evidence: DataFrame, *, fit: bool = False,
             features: Sequence[str] = FEATURES) -> DataFrame:
    """(item_id, other_id, *features) from both sides of each pair_evidence row: as is for
    item_id, and for other_id the symmetric counts only (``near``, ``near_c``; its forward
    evidence towards item_id is the reverse row's). A pair thus has up to two rows per item,
    whose features add up (rank.rank_batch does). With ``fit``, the fit part's sums."""
    features = [f for f in FEATURES if f in features]
    cols = [F.col(f + FIT if fit else f).alias(f) for f in features]
    back = [F.col(f + FIT if fit else f).alias(f) if f in SYMMETRIC else F.lit(0.0).alias(f)
            for f in features]
    forward = evidence.select(ITEM, OTHER, *cols)
    backward = evidence.select(F.col(OTHER).alias(ITEM), F.col(ITEM).alias(OTHER), *back)
    either = [F.col(f) > 0 for f in features if f in SYMMETRIC]
    return forward.unionByName(backward.where(functools.reduce(operator.or_, either)))


def popularity(counts: DataFrame, *, k: int) -> DataFrame:
    """(rank, rec_item, score): the k + 1 most frequent training items (ties to the smaller id).
    The same list serves every query; where it is used the query item itself is dropped, so k
    remain."""
    top = counts.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM)).limit(k + 1).collect()
    rows = [(rank, r[ITEM], float(r[FREQUENCY])) for rank, r in enumerate(top, 1)]
    schema = counts.schema[ITEM].dataType.simpleString()
    return counts.sparkSession.createDataFrame(
        rows, f"{RANK} int, {REC} {schema}, {SCORE} double")
