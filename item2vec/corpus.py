"""Training sentences for MLlib Word2Vec, with what item2vec needs and MLlib lacks.

- Frequent-item subsampling (item2vec paper): an occurrence of an item with corpus share f is
  kept with probability min(1, sqrt(t/f) + t/f).
- Several independently subsampled copies of the corpus, so rare-item contexts are not lost.
- Basket mode: each copy of a session is shuffled, for order-free sessions.

The random draws are hashes of (seed, session, copy, position), not a random generator: the
corpus is identical on every run and on every task retry, which keeps training reproducible.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from item2vec.events import ITEM
from item2vec.sessions import ITEMS, SESSION_ID
from item2vec.vocabulary import FREQUENCY, INDEX

SENTENCE = "sentence"
_MANTISSA = (1 << 53) - 1


def keep_probability(frequency: Column, total: int, threshold: float) -> Column:
    """min(1, sqrt(t/f) + t/f) with f = frequency / total; 1 when subsampling is off."""
    if threshold <= 0:
        return F.lit(1.0)
    ratio = F.lit(threshold) / (frequency / F.lit(float(total)))
    return F.least(F.lit(1.0), F.sqrt(ratio) + ratio)


def uniform(*cols: Column) -> Column:
    """A deterministic draw in [0, 1) from the hash of ``cols``."""
    return F.xxhash64(*cols).bitwiseAND(F.lit(_MANTISSA)) / F.lit(float(_MANTISSA + 1))


def expected_tokens(vocab: DataFrame, *, subsample: float) -> float:
    """Tokens one subsampled copy of the corpus is expected to hold (sum of f x keep)."""
    total = vocab.agg(F.sum(FREQUENCY)).first()[0] or 1
    keep = keep_probability(F.col(FREQUENCY), total, subsample)
    return float(vocab.agg(F.sum(F.col(FREQUENCY) * keep)).first()[0] or 0.0)


def build_corpus(sessions: DataFrame, vocab: DataFrame, *, subsample: float, copies: int,
                 mode: str, min_sentence_length: int, seed: int) -> DataFrame:
    """Sessions + vocabulary -> one ``sentence`` (array<string> of item indexes) per row.

    Out-of-vocabulary items are removed first; each of ``copies`` copies of a session is then
    subsampled (and shuffled in basket mode) independently.
    """
    total = vocab.agg(F.sum(FREQUENCY)).first()[0] or 1
    lookup = vocab.select(ITEM, INDEX, keep_probability(F.col(FREQUENCY), total, subsample)
                          .alias("keep"))
    tokens = (sessions.select(SESSION_ID, F.posexplode(ITEMS).alias("pos", ITEM))
              .join(F.broadcast(lookup), ITEM)
              .groupBy(SESSION_ID)
              .agg(F.sort_array(F.collect_list(F.struct("pos", INDEX, "keep"))).alias("toks")))
    seed_col = F.lit(seed)
    copied = tokens.withColumn("copy", F.explode(F.sequence(F.lit(0), F.lit(copies - 1))))
    kept = F.filter("toks", lambda t: uniform(seed_col, F.col(SESSION_ID), F.col("copy"),
                                              t["pos"]) < t["keep"])
    if mode == "basket":
        keyed = F.transform(kept, lambda t: F.struct(
            uniform(seed_col + 1, F.col(SESSION_ID), F.col("copy"), t["pos"]).alias("k"),
            t[INDEX].alias(INDEX)))
        kept = F.sort_array(keyed)
    sentence = F.transform(kept, lambda t: t[INDEX].cast("string"))
    # Shuffle reads arrive in any order; sorting makes MLlib see the same sentence order on
    # every run, which reproducible training needs.
    return (copied.select(SESSION_ID, "copy", sentence.alias(SENTENCE))
            .where(F.size(SENTENCE) >= min_sentence_length)
            .sortWithinPartitions(SESSION_ID, "copy")
            .select(SENTENCE))
