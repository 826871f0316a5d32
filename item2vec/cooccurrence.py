"""Co-occurrence evidence: which items appear near each other in training sessions, how often,
and in which order; and the reference lists built from it alone.

Item co-occurrence counts and sequential rules (forward transitions weighted 1 / distance) are
what a team computes with a few lines of SQL, and on real click logs they predict the next
item better than embeddings do (Ludewig & Jannach). The hybrid ranking (item2vec.rank) uses the
same evidence, and the evaluation scores these lists as the baselines to beat.

Evidence is counted once per run, by distance and direction, for every ordered pair of distinct
items at most ``max_distance`` positions apart in a session: ``fwd[d-1]`` is how often
``other_id`` came ``d`` positions after ``item_id``, ``bwd[d-1]`` how often it came ``d``
positions before. Any window up to ``max_distance`` and any distance weighting is derived from
these two short arrays without another pass over the sessions (item2vec.rank does). Pairs are
generated with array functions per session and aggregated with one shuffle.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from item2vec.events import ITEM
from item2vec.sessions import ITEMS, SESSION_ID
from item2vec.vocabulary import FREQUENCY, INDEX

OTHER, FWD, BWD, KEYS = "other_id", "fwd", "bwd", "keys"
# What the ranking reads of a pair's evidence (see features()).
FEATURES = ("near", "fwd1", "fwd2", "near_c", "rules")
RANK, REC, SCORE = "rank", "rec_item", "score"
FIT = "_fit"  # sessions column: true for the part that fits the evidence used to tune weights


def item_counts(sessions: DataFrame) -> DataFrame:
    """(item_id, frequency): occurrences of every item in the training sessions."""
    return (sessions.select(F.explode(ITEMS).alias(ITEM)).groupBy(ITEM)
            .agg(F.count(F.lit(1)).alias(FREQUENCY)))


def keyed_sessions(sessions: DataFrame, catalogue: DataFrame, *, fit: bool = False) -> DataFrame:
    """(session_id[, _fit], keys): each session's items as the catalogue's integer keys.

    Counting and ranking on int keys instead of ids keeps every shuffle, hash and array of the
    evidence small whatever the id type; ids come back only on the published rows.
    """
    keep = [SESSION_ID, *([FIT] if fit else [])]
    tokens = (sessions.select(*keep, F.posexplode(ITEMS).alias("pos", ITEM))
              .join(catalogue.select(ITEM, INDEX), ITEM))
    return (tokens.groupBy(*keep)
            .agg(F.sort_array(F.collect_list(F.struct("pos", INDEX))).alias("t"))
            .select(*keep, F.transform("t", lambda t: t[INDEX]).alias(KEYS)))


def pair_evidence(sessions: DataFrame, *, max_distance: int, fit: bool = False,
                  items: str = ITEMS) -> DataFrame:
    """(item_id, other_id, fwd, bwd[, fwd_fit, bwd_fit]) for every ordered pair of distinct items
    at most ``max_distance`` positions apart in a session (both orders are rows of their own).

    ``items`` names the sessions' array column (ids, or catalogue keys). With ``fit``, sessions
    carry ``_fit`` and the counts over the fit part come along in the same aggregation.
    """
    n = F.size(items)

    def at(d: int) -> Column:  # (a, b) pairs d positions apart
        length = F.greatest(n - d, F.lit(0))
        return F.transform(F.arrays_zip(F.slice(items, 1, length).alias("a"),
                                         F.slice(items, d + 1, length).alias("b")),
                           lambda p: F.struct(p["a"].alias("a"), p["b"].alias("b"),
                                              F.lit(d).alias("d")))

    pairs = F.flatten(F.array(*[at(d) for d in range(1, max_distance + 1)]))
    exploded = (sessions.where(n >= 2)
                .select(*([FIT] if fit else []), F.explode(pairs).alias("p"))
                .where(F.col("p.a") != F.col("p.b")))
    # Each pair is a row of each item: b comes after a (forward), a comes before b (backward).
    both = exploded.select(*([FIT] if fit else []), F.col("p.d").alias("d"), F.explode(F.array(
        F.struct(F.col("p.a").alias(ITEM), F.col("p.b").alias(OTHER), F.lit(True).alias("fw")),
        F.struct(F.col("p.b").alias(ITEM), F.col("p.a").alias(OTHER), F.lit(False).alias("fw")),
    )).alias("e")).select(F.col("e.*"), "d", *([FIT] if fit else []))

    def counts(forward: bool, only_fit: bool) -> list[Column]:
        cond = F.col("fw") if forward else ~F.col("fw")
        if only_fit:
            cond = cond & F.col(FIT)
        return [F.count(F.when(cond & (F.col("d") == d), 1)) for d in range(1, max_distance + 1)]

    parts = [(FWD, True, False), (BWD, False, False)]
    if fit:
        parts += [(f"{FWD}{FIT}", True, True), (f"{BWD}{FIT}", False, True)]
    aggs = [F.array(*counts(forward, only_fit)).alias(name) for name, forward, only_fit in parts]
    return both.groupBy(ITEM, OTHER).agg(*aggs)


def near(window: int) -> Column:
    """Times the pair occurred at most ``window`` positions apart, in either order."""
    total = F.lit(0).cast("long")
    for d in range(window):
        total = total + F.coalesce(F.col(FWD)[d], F.lit(0)) + F.coalesce(F.col(BWD)[d], F.lit(0))
    return total


def forward(window: int, decay: int = 1) -> Column:
    """Occurrences of other_id after item_id within ``window`` positions, weighted
    1 / distance^decay (sequential rules)."""
    total = F.lit(0.0)
    for d in range(1, window + 1):
        total = total + F.coalesce(F.col(FWD)[d - 1], F.lit(0)) / F.lit(float(d ** decay))
    return total


def features(evidence: DataFrame, *, window: int, forward_window: int, cooc_window: int,
             rules_window: int) -> DataFrame:
    """(item_id, other_id, *FEATURES): a pair's evidence as the few numbers ranking uses:
    symmetric co-occurrences within ``window``, forward transitions within ``forward_window``
    weighted 1/d and 1/d^2, and the baselines' co-occurrences (``cooc_window``) and
    sequential rules (``rules_window``). Pairs with none of them are dropped."""
    out = evidence.select(ITEM, OTHER, near(window).alias("near"),
                          forward(forward_window, 1).alias("fwd1"),
                          forward(forward_window, 2).alias("fwd2"),
                          near(cooc_window).alias("near_c"),
                          forward(rules_window, 1).alias("rules"))
    return out.where((F.col("near") > 0) | (F.col("fwd1") > 0) | (F.col("near_c") > 0)
                     | (F.col("rules") > 0))


def popularity(counts: DataFrame, *, k: int) -> DataFrame:
    """(rank, rec_item, score): the k + 1 most frequent training items (ties to the smaller id).
    The same list serves every query; where it is used the query item itself is dropped, so k
    remain."""
    top = counts.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM)).limit(k + 1).collect()
    rows = [(rank, r[ITEM], float(r[FREQUENCY])) for rank, r in enumerate(top, 1)]
    schema = counts.schema[ITEM].dataType.simpleString()
    return counts.sparkSession.createDataFrame(
        rows, f"{RANK} int, {REC} {schema}, {SCORE} double")
