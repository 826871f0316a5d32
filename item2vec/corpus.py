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

SENTENCE, KEYS, KEEP, KEEPS = "sentence", "keys", "keep", "keeps"
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


def with_keep(catalogue: DataFrame, *, vocab_size: int, subsample: float) -> DataFrame:
    """(item_id, item_index, keep): each item's subsampling keep probability, 0 for items
    outside the vocabulary (indexes >= ``vocab_size``, so they never reach the corpus). A float:
    keyed_sessions carries one per token, and a probability needs no more digits."""
    in_vocab = F.col(INDEX) < vocab_size
    total = catalogue.where(in_vocab).agg(F.sum(FREQUENCY)).first()[0] or 1
    keep = F.when(in_vocab, keep_probability(F.col(FREQUENCY), total, subsample))
    return catalogue.select(ITEM, INDEX, F.coalesce(keep, F.lit(0.0)).cast("float").alias(KEEP))


def keyed_sessions(sessions: DataFrame, catalogue: DataFrame, *,
                   keep: tuple[str, ...] = ()) -> DataFrame:
    """(session_id, *keep, keys, keeps): each session's items as integer indexes of
    ``catalogue`` (item_id, item_index, keep; see with_keep), with their keep probabilities.

    One shuffle turns the sessions into ints for everything after it: the training corpus
    (``sentences``) and the co-occurrence evidence, so no later shuffle carries ids.
    """
    cols = [SESSION_ID, *keep]
    tokens = (sessions.select(*cols, F.posexplode(ITEMS).alias("pos", ITEM))
              .join(catalogue.select(ITEM, INDEX, KEEP), ITEM))
    grouped = tokens.groupBy(*cols).agg(
        F.sort_array(F.collect_list(F.struct("pos", INDEX, KEEP))).alias("t"))
    return grouped.select(*cols, F.transform("t", lambda t: t[INDEX]).alias(KEYS),
                          F.transform("t", lambda t: t[KEEP]).alias(KEEPS))


def sentences(keyed: DataFrame, *, copies: int, mode: str, min_sentence_length: int,
              seed: int) -> DataFrame:
    """Keyed sessions -> one ``sentence`` (array<string> of item indexes) per session and copy.

    Each of ``copies`` copies of a session is subsampled (and shuffled in basket mode)
    independently; the draw of a token depends on (seed, session, copy, its position).
    """
    seed_col = F.lit(seed)
    toks = F.arrays_zip(F.col(KEYS).alias(INDEX), F.col(KEEPS).alias(KEEP))
    copied = keyed.select(SESSION_ID, toks.alias("toks"),
                          F.explode(F.sequence(F.lit(0), F.lit(copies - 1))).alias("copy"))
    kept = F.filter("toks", lambda t, pos: uniform(seed_col, F.col(SESSION_ID), F.col("copy"),
                                                   pos) < t[KEEP])
    if mode == "basket":
        kept = F.sort_array(F.transform(kept, lambda t, pos: F.struct(
            uniform(seed_col + 1, F.col(SESSION_ID), F.col("copy"), pos).alias("k"),
            t[INDEX].alias(INDEX))))
    sentence = F.transform(kept, lambda t: t[INDEX].cast("string"))
    # Shuffle reads arrive in any order; sorting makes MLlib see the same sentence order on
    # every run, which reproducible training needs.
    return (copied.select(SESSION_ID, "copy", sentence.alias(SENTENCE))
            .where(F.size(SENTENCE) >= min_sentence_length)
            .sortWithinPartitions(SESSION_ID, "copy")
            .select(SENTENCE))


def build_corpus(sessions: DataFrame, vocab: DataFrame, *, subsample: float, copies: int,
                 mode: str, min_sentence_length: int, seed: int) -> DataFrame:
    """Sessions + vocabulary -> training sentences (keyed_sessions, then sentences).

    Out-of-vocabulary items are removed; each of ``copies`` copies of a session is then
    subsampled (and shuffled in basket mode) independently.
    """
    size = vocab.count()
    keyed = keyed_sessions(sessions, with_keep(vocab, vocab_size=size, subsample=subsample))
    return sentences(keyed, copies=copies, mode=mode, min_sentence_length=min_sentence_length,
                     seed=seed)
