"""Vocabulary: item frequencies over sessions, min_count / max_vocab, dense indexes.

item_index 0..V-1 orders items by descending frequency (ties by item id), so index order is
stable across runs and the most frequent items get the smallest indexes.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from item2vec.events import ITEM
from item2vec.sessions import ITEMS

INDEX, FREQUENCY = "item_index", "frequency"


def build_vocabulary(sessions: DataFrame, *, min_count: int, max_vocab: int) -> DataFrame:
    """Sessions -> (item_id, item_index int32, frequency int64), most frequent first."""
    counts = (sessions.select(F.explode(ITEMS).alias(ITEM))
              .groupBy(ITEM).agg(F.count(F.lit(1)).alias(FREQUENCY)))
    return from_counts(counts, min_count=min_count, max_vocab=max_vocab)


def assign_indexes(counts: DataFrame) -> DataFrame:
    """(item_id, frequency) -> add item_index 0..V-1 by frequency desc, item id asc.

    A global window runs in one task; that is fine for the vocabulary (at most millions of rows,
    which the driver holds anyway for training).
    """
    order = Window.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM).asc())
    return counts.select(ITEM, (F.row_number().over(order) - 1).cast("int").alias(INDEX),
                         F.col(FREQUENCY).cast("long").alias(FREQUENCY))


def from_counts(counts: DataFrame, *, min_count: int, max_vocab: int) -> DataFrame:
    """(item_id, frequency) over all training items -> the vocabulary (see build_vocabulary)."""
    vocab = assign_indexes(counts.where(F.col(FREQUENCY) >= min_count).select(ITEM, FREQUENCY))
    if max_vocab:
        vocab = vocab.where(F.col(INDEX) < max_vocab)
    return vocab
