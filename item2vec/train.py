"""Skip-gram training with Spark MLlib Word2Vec (hierarchical softmax), and the trained model:
vocabulary -> corpus -> Word2Vec -> a dense matrix the later stages read from broadcasts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.broadcast import Broadcast
from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from item2vec import corpus as corpus_mod
from item2vec import vocabulary as vocab_mod
from item2vec.corpus import SENTENCE
from item2vec.errors import BadInput
from item2vec.events import ITEM
from item2vec.progress import Progress
from item2vec.vocabulary import FREQUENCY, INDEX

# A seam around stage outputs: wrap(stage, df) -> df. The job passes no_wrap; fault-injection
# tests pass a wrapper whose tasks fail on their first attempt.
Wrap = Callable[[str, DataFrame], DataFrame]


def no_wrap(stage: str, df: DataFrame) -> DataFrame:
    """The identity seam the job runs with."""
    return df

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
    # MLlib holds syn0 + syn1 (float32), their broadcasts, and every iteration collects each
    # partition's updated rows as boxed per-item arrays. Measured: a 1M x 64 model (256 MiB of
    # vectors) ran a 4g driver out of heap in its first iteration; ask for 16x the vectors.
    need = cells * 4 * 16
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


def train_vectors(corpus: DataFrame, *, vocab_size: int, vector_size: int, window: int,
                  iterations: int, step_size: float, num_partitions: int, seed: int,
                  max_sentence_length: int) -> DataFrame:
    """Fit Word2Vec on ``sentence`` rows (tokens "0".."vocab_size-1") -> (item_index int32,
    vector array<float>) for every index; an index the model never saw gets zeros.

    The corpus is already restricted to the vocabulary, so MLlib's own minCount is 1: every
    token in it gets a vector, except items that subsampling removed from every copy.
    The vectors leave the model through ``transform`` of one-token sentences made by range
    tasks: it broadcasts the model's table. ``getVectors()`` would build a local relation on
    the driver that Spark then ships inside the tasks (6 MB per task at 40k x 64; beyond
    spark.rpc.message.maxSize at 1M items).
    """
    spark = corpus.sparkSession
    model = Word2Vec(vectorSize=vector_size, minCount=1, numPartitions=num_partitions,
                     stepSize=step_size, maxIter=iterations, seed=seed, windowSize=window,
                     maxSentenceLength=max_sentence_length, inputCol=SENTENCE,
                     outputCol="vector").fit(corpus)
    parts = max(1, min(spark.sparkContext.defaultParallelism, -(-vocab_size // (1 << 14))))
    tokens = spark.range(0, vocab_size, 1, numPartitions=parts).select(
        F.col("id").cast("int").alias(INDEX),
        F.array(F.col("id").cast("string")).alias(SENTENCE))
    return model.transform(tokens).select(INDEX,
                                          vector_to_array("vector", "float32").alias(VECTOR))


def to_matrix(vectors: DataFrame, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Collect (item_index, vector) rows into a dense float32 matrix indexed by item_index.

    Returns (matrix V x dim, mask of rows with a trained vector: missing or all-zero rows are
    items the model never saw; a trained vector is never exactly zero). This is the one place
    the vectors become numpy on the driver.
    """
    table: pa.Table = vectors.select(INDEX, VECTOR).toArrow()
    index = table.column(INDEX).to_numpy()
    flat = table.column(VECTOR).combine_chunks()
    dim = len(flat[0]) if len(flat) else 0
    values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = np.zeros((vocab_size, dim), dtype=np.float32)
    if len(index):
        matrix[index] = values.reshape(len(index), dim)
    present = matrix.any(axis=1) if dim else np.zeros(vocab_size, dtype=bool)
    return matrix, present


@dataclass
class Model:
    """A trained embedding: final vocabulary (dense indexes), the vectors as a matrix, and how
    training was planned. The driver holds the matrix anyway (MLlib's model lives there); every
    DataFrame built from it reads it from a broadcast, never from a local relation shipped
    inside tasks."""

    vocab: DataFrame  # item_id, item_index, frequency of the items with a vector
    matrix: np.ndarray  # V x dim float32, row i = item_index i
    keys: np.ndarray  # index in the training vocabulary of each row (arange(V) without drops)
    dropped: int  # vocabulary items that got no vector (removed from every corpus copy)
    copies: int  # corpus copies used
    iterations: int  # training iterations used
    partitions: int  # MLlib numPartitions used
    _broadcasts: list[Broadcast] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    def broadcast(self, spark: SparkSession, values: np.ndarray) -> Broadcast:
        """Broadcast ``values`` for this model's lifetime (released by ``release``)."""
        bc = spark.sparkContext.broadcast(values)
        self._broadcasts.append(bc)
        return bc

    def release(self) -> None:
        """Free the broadcasts once every output is written."""
        for bc in self._broadcasts:
            bc.unpersist()
        self._broadcasts.clear()


def fit_model(keyed: DataFrame, vocab: DataFrame, *, subsample: float, copies: int,
              max_auto_copies: int, corpus_mode: str, min_sentence_length: int,
              vector_size: int, window: int, iterations: int, auto_tokens: int,
              max_auto_passes: int, step_size: float, num_partitions: int,
              tokens_per_partition: int, seed: int, max_sentence_length: int,
              progress: Progress, wrap: Wrap, label: str = "") -> Model:
    """Corpus -> MLlib Word2Vec -> the vectors of ``vocab`` (item_id, item_index 0..V-1,
    frequency; persisted by the caller), from ``keyed`` sessions (corpus.keyed_sessions on a
    catalogue whose vocabulary is ``vocab``).

    ``wrap(stage, df)`` is applied to the corpus (a seam for fault-injection tests; the job
    passes the identity). Vocabulary items that end up without a vector (subsampling removed
    them from every corpus copy) are dropped and the rest re-numbered densely; ``Model.keys``
    keeps each matrix row's index in ``vocab``.
    """
    spark = keyed.sparkSession
    size = vocab.count()
    check_capacity(size, vector_size, driver_bytes=_driver_memory_bytes(spark))
    with progress.stage(f"{label}corpus") as note:
        per_copy = corpus_mod.expected_tokens(vocab, subsample=subsample)
        partitions = plan_partitions(per_copy, num_partitions=num_partitions,
                                     tokens_per_partition=tokens_per_partition,
                                     cores=spark.sparkContext.defaultParallelism)
        copies, iterations = plan_passes(per_copy, copies=copies, iterations=iterations,
                                         auto_tokens=auto_tokens, max_auto_passes=max_auto_passes,
                                         max_auto_copies=max_auto_copies)
        sentences = corpus_mod.sentences(keyed, copies=copies, mode=corpus_mode,
                                         min_sentence_length=min_sentence_length, seed=seed)
        sentences = wrap("corpus", sentences).persist(StorageLevel.MEMORY_AND_DISK_DESER)
        stats = sentences.agg(F.count(F.lit(1)).alias("n"),
                              F.sum(F.size(corpus_mod.SENTENCE)).alias("t")).first()
        note.append(f"{stats['n']:,} sentences, {stats['t'] or 0:,} tokens "
                    f"({copies} copies, subsample {subsample:g}, {corpus_mode})")
        if not stats["n"]:
            sentences.unpersist()
            raise BadInput("no training sentences left after subsampling; lower "
                           "corpus.min_sentence_length or raise corpus.subsample")
    with progress.stage(f"{label}train") as note:
        vectors = train_vectors(sentences, vocab_size=size, vector_size=vector_size,
                                window=window, iterations=iterations, step_size=step_size,
                                num_partitions=partitions, seed=seed,
                                max_sentence_length=max_sentence_length)
        matrix, present = to_matrix(vectors, size)
        sentences.unpersist()
        note.append(f"{int(present.sum()):,} vectors of dim {vector_size}, "
                    f"{iterations} iteration(s) over {copies} copies, {partitions} partition(s)")
    keys = np.flatnonzero(present).astype(np.int32)
    final = vocab
    if len(keys) < size:  # re-number so that indexes stay dense 0..V-1 in the same order
        gone = [int(i) for i in np.flatnonzero(~present)]  # few: only rare items vanish
        final = vocab_mod.assign_indexes(
            vocab.where(~F.col(INDEX).isin(gone)).select(ITEM, FREQUENCY)).persist()
        final.count()
        matrix = matrix[present]
    return Model(final, matrix, keys, size - len(keys), copies, iterations, partitions)


def item_vectors(model: Model) -> DataFrame:
    """(item_id, item_index, frequency, vector array<float>) read from a broadcast of the matrix
    by range tasks, so no task carries the vectors in its closure."""
    spark = model.vocab.sparkSession
    bc = model.broadcast(spark, model.matrix)
    rows = 1 << 14
    blocks = max(1, -(-model.size // rows))

    def emit(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        m = bc.value
        for batch in batches:
            for b in batch.column(0).to_numpy():
                idx = np.arange(b * rows, min((b + 1) * rows, len(m)), dtype=np.int32)
                values = pa.array(m[idx].ravel(), pa.float32())
                offsets = pa.array(np.arange(0, len(values) + 1, m.shape[1], dtype=np.int32))
                yield pa.RecordBatch.from_arrays(
                    [pa.array(idx), pa.ListArray.from_arrays(offsets, values)],
                    names=[INDEX, VECTOR])

    parts = min(blocks, spark.sparkContext.defaultParallelism)
    vectors = (spark.range(0, blocks, 1, numPartitions=parts)
               .mapInArrow(emit, f"{INDEX} int, {VECTOR} array<float>"))
    return model.vocab.join(vectors, INDEX).select(ITEM, INDEX, FREQUENCY, VECTOR)


def _driver_memory_bytes(spark: SparkSession) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory())
    except Exception:  # no JVM access (e.g. Spark Connect): skip the estimate
        return None
