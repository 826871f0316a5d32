"""Skip-gram training with Spark MLlib Word2Vec (hierarchical softmax)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from item2vec.corpus import SENTENCE
from item2vec.errors import BadInput
from item2vec.vocabulary import INDEX

VECTOR = "vector"
# MLlib keeps all vectors in one Java array indexed by int: vocab x dim must stay below 2^31.
MLLIB_MAX_CELLS = 2**31


def check_capacity(vocab_size: int, vector_size: int, *, driver_bytes: int | None = None) -> None:
    """Fail before training when the model cannot fit MLlib's array or the driver's memory."""
    cells = vocab_size * vector_size
    if cells >= MLLIB_MAX_CELLS:
        raise BadInput(f"vocabulary ({vocab_size:,} items) x train.vector_size ({vector_size}) = "
                       f"{cells:,} >= 2^31, MLlib's limit; raise vocabulary.min_count, set "
                       f"vocabulary.max_vocab or lower train.vector_size")
    # MLlib holds syn0 + syn1 (float32) plus a copy per aggregation; keep a 4x margin.
    need = cells * 4 * 2 * 4
    if driver_bytes and need > driver_bytes:
        raise BadInput(f"model of {vocab_size:,} x {vector_size} needs about {need >> 20:,} MiB of "
                       f"driver memory, more than spark.driver.memory allows "
                       f"({driver_bytes >> 20:,} MiB); raise it or set vocabulary.max_vocab")


def plan_passes(tokens_per_copy: float, *, copies: int, iterations: int,
                auto_tokens: int, max_auto_passes: int, max_auto_copies: int) -> tuple[int, int]:
    """(copies, iterations) to use; 0 in either setting means "choose by corpus size".

    Small logs need many passes to place rare items; a 10M-event log converges in about one,
    and each pass over it costs minutes. So auto aims at ``auto_tokens`` training tokens in
    all: passes = ceil(auto_tokens / tokens_per_copy), bounded by [1, max_auto_passes], spread
    over independent subsampled copies first (up to ``max_auto_copies``), then iterations.
    """
    passes = int(min(max(-(-auto_tokens // max(int(tokens_per_copy), 1)), 1), max_auto_passes))
    if not copies:
        copies = min(-(-passes // iterations) if iterations else passes, max_auto_copies)
    if not iterations:
        iterations = max(1, -(-passes // copies))
    return copies, iterations


def plan_partitions(tokens_per_copy: float, *, num_partitions: int, tokens_per_partition: int,
                    cores: int) -> int:
    """MLlib numPartitions to use; 0 means one per ``tokens_per_partition`` tokens, at most
    ``cores``. Averaging per-partition models costs little on large corpora and a lot on
    small ones (each partition then sees too few contexts), so small logs train on one."""
    if num_partitions:
        return num_partitions
    return int(min(max(int(tokens_per_copy) // tokens_per_partition, 1), max(cores, 1)))


def train_vectors(corpus: DataFrame, *, vector_size: int, window: int, iterations: int,
                  step_size: float, num_partitions: int, seed: int,
                  max_sentence_length: int) -> DataFrame:
    """Fit Word2Vec on ``sentence`` rows -> (item_index int32, vector array<float>).

    The corpus is already restricted to the vocabulary, so MLlib's own minCount is 1: every
    token in it gets a vector, except items that subsampling removed from every copy.
    """
    model = Word2Vec(vectorSize=vector_size, minCount=1, numPartitions=num_partitions,
                     stepSize=step_size, maxIter=iterations, seed=seed, windowSize=window,
                     maxSentenceLength=max_sentence_length, inputCol=SENTENCE).fit(corpus)
    return model.getVectors().select(F.col("word").cast("int").alias(INDEX),
                                     vector_to_array("vector", "float32").alias(VECTOR))


def to_matrix(vectors: DataFrame, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Collect (item_index, vector) rows into a dense float32 matrix indexed by item_index.

    Returns (matrix V x dim, mask of rows that had a vector). The driver holds the vectors
    anyway (MLlib's model lives there); this is the one place they become numpy.
    """
    table: pa.Table = vectors.select(INDEX, VECTOR).toArrow()
    index = table.column(INDEX).to_numpy()
    flat = table.column(VECTOR).combine_chunks()
    dim = len(flat[0]) if len(flat) else 0
    values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = np.zeros((vocab_size, dim), dtype=np.float32)
    present = np.zeros(vocab_size, dtype=bool)
    if len(index):
        matrix[index] = values.reshape(len(index), dim)
        present[index] = True
    return matrix, present
