"""Exact cosine top-k neighbours for every item, as blocked float32 matrix products.

The L2-normalised vectors (V x dim) are broadcast once; each task takes blocks of query rows,
multiplies them with the whole matrix (BLAS) and selects the k best per row with argpartition.
A block holds rows x V scores, sized by ``block_bytes`` so memory stays bounded whatever V is.
Ties are broken by the smaller item index, so the output is deterministic.

``search="ivf"`` or ``"hnsw"`` swaps the all-pairs product for an approximate faiss index
(item2vec.ann) for catalogues where V x V is too slow; the output contract and the exact scores
stay the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from item2vec import ann
from item2vec.events import ITEM
from item2vec.vocabulary import INDEX

RANK, SIMILAR_INDEX, SIMILAR_ITEM, SCORE = "rank", "similar_index", "similar_item_id", "score"
PAIRS_SCHEMA = f"{INDEX} int, {RANK} int, {SIMILAR_INDEX} int, {SCORE} float"


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero) as C-contiguous float32."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def block_rows(vocab_size: int, block_bytes: int) -> int:
    """Query rows per block so that one rows x V float32 score block fits ``block_bytes``."""
    return int(max(16, min(8192, block_bytes // (4 * max(vocab_size, 1)))))


# Columns per group for the selection bound (see top_k_block); blocks with fewer than
# _MIN_GROUPS_PER_K * k groups use a plain partial sort instead. 32 balanced the group maxima's
# partition against gathering the candidate groups (64: 30 % slower selection at V = 62k).
_GROUP = 32
_MIN_GROUPS_PER_K = 4


def top_k_block(queries: np.ndarray, q: np.ndarray, m: np.ndarray, k: int, *,
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` rows of ``m`` for each row of ``q`` by dot product, excluding the query itself.

    ``queries`` holds the row index of each query in ``m`` (its own row is never returned).
    Returns (indexes, scores), each len(queries) x k, sorted by score desc then index asc.
    ``out``, a float32 buffer of at least len(queries) x len(m), holds the scores when given:
    a task reuses one instead of mapping (and faulting in) a fresh block of pages per call.

    Selection is exact without a full partition of every score row: the columns are dealt
    into G groups of ``_GROUP`` (column j * G + g belongs to group g, so a group's maximum is
    an element-wise max over ``_GROUP`` contiguous slices, one SIMD-friendly pass over the
    block); t = the k-th largest group maximum is a lower bound of the row's k-th best score
    (k groups each hold a score >= t), so every score >= t is a candidate and no score below
    t can be in the top k. Only the groups whose maximum reaches t are gathered, typically
    about k groups, and the few candidates are sorted (score desc, index asc), so ties at the
    k-th score are resolved by the smaller index as before.
    """
    n, width = len(queries), len(m)
    scores = q @ m.T if out is None else np.matmul(q, m.T, out=out[:n, :width])
    rows = np.arange(n)
    scores[rows, queries] = -np.inf
    groups = width // _GROUP
    if k >= width or groups < _MIN_GROUPS_PER_K * k:
        return _top_k_sorted(scores, k)
    gmax = scores[:, :groups * _GROUP].reshape(n, _GROUP, groups).max(axis=1)
    bound = np.partition(gmax, groups - k, axis=1)[:, groups - k]
    g_row, g_idx = np.nonzero(gmax >= bound[:, None])
    # the candidate groups' scores, (pairs, _GROUP), gathered by flat position
    at = (g_row * width + g_idx)[:, None] + np.arange(_GROUP) * groups
    vals = scores.reshape(-1)[at]
    p, j = np.nonzero(vals >= bound[g_row, None])
    cand_row, cand_col, cand_val = g_row[p], j * groups + g_idx[p], vals[p, j]
    if groups * _GROUP < width:  # the last, partial group: test its columns directly
        tail = scores[:, groups * _GROUP:]
        t_row, t_col = np.nonzero(tail >= bound[:, None])
        cand_row = np.concatenate([cand_row, t_row])
        cand_col = np.concatenate([cand_col, t_col + groups * _GROUP])
        cand_val = np.concatenate([cand_val, tail[t_row, t_col]])
    if len(cand_val) > 16 * n * (k + _GROUP):  # massive ties (e.g. zero vectors): plain path
        return _top_k_sorted(scores, k)
    order = np.lexsort((cand_col, -cand_val, cand_row))
    per_row = np.bincount(cand_row, minlength=n)  # >= k for every row, by the bound
    first = np.cumsum(per_row) - per_row
    order = order[(np.arange(len(order)) - np.repeat(first, per_row)) < k]
    return (cand_col[order].astype(np.int32).reshape(n, k),
            cand_val[order].astype(np.float32).reshape(n, k))


def _top_k_sorted(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k per row by argpartition (small vocabularies, degenerate ties)."""
    if k >= scores.shape[1]:
        cand = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    else:
        cand = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        # argpartition picks arbitrarily among values tied with the k-th best: redo those rows.
        kth = np.take_along_axis(scores, cand, axis=1).min(axis=1)
        ties = np.flatnonzero(np.count_nonzero(scores >= kth[:, None], axis=1) > k)
        for r in ties:
            best = np.flatnonzero(scores[r] >= kth[r])
            order = np.lexsort((best, -scores[r, best]))
            cand[r] = best[order[:k]]
    vals = np.take_along_axis(scores, cand, axis=1)
    order = np.lexsort((cand, -vals), axis=1)
    cand = np.take_along_axis(cand, order, axis=1)[:, :k]
    vals = np.take_along_axis(vals, order, axis=1)[:, :k]
    return cand.astype(np.int32), vals.astype(np.float32)


SEARCHES = ("exact", *ann.METHODS)
# Approximate searches: at least this many query blocks per task slot, so that a small query
# set still keeps every core busy (each block is one faiss call, which runs one thread).
_BLOCKS_PER_SLOT = 4


class Searcher:
    """Nearest neighbours by cosine, prepared on the driver and searched inside tasks.

    The driver broadcasts the L2-normalised matrix (exact) or a faiss index holding the
    vectors (ivf / hnsw); a task calls ``open()`` once and then ``search(rows)`` per block of
    query rows, which returns their ``k`` best rows (never the row itself; ties to the smaller
    row) with exact cosines, and ``vectors`` for any other dot product.
    """

    def __init__(self, spark: SparkSession, matrix: np.ndarray, *, k: int, block_bytes: int,
                 search: str, params: ann.Params | None = None) -> None:
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
        want = {"hnsw": ann.HnswParams, "ivf": ann.IvfParams}.get(search)
        if want is not None and not isinstance(params, want):
            raise ValueError(f"search={search!r} needs params={want.__name__}(...)")
        self.size, self.dim = matrix.shape
        self.k = min(k, self.size - 1)
        self.approximate = want is not None
        self.params = params
        self.exact_rows = block_rows(self.size, block_bytes)
        sc = spark.sparkContext
        normalized = normalize(matrix)
        if self.approximate:
            # Only the index travels: it holds the vectors too (LoadedIndex.vectors).
            self._bc = sc.broadcast(ann.build_index(normalized, params))
            self._key = uuid.uuid4().hex
            # A block (one faiss call) gathers rows x (k + 1) candidate vectors: no V-wide rows.
            per_row = 4 * (self.k + 1) * max(self.dim, 1)
            self.rows = int(max(16, min(8192, block_bytes // per_row)))
        else:
            self._bc = sc.broadcast(normalized)
            self.rows = self.exact_rows
        self._index: ann.LoadedIndex | None = None
        self.vectors: np.ndarray | None = None
        self._scores: np.ndarray | None = None  # the exact search's block, reused per task

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_scores": None}  # a block of scores never travels

    def open(self) -> Searcher:
        """Load the broadcast in the task (once per task)."""
        if self.approximate:
            self._index = ann.loaded(self._key, self._bc, self.params)
            self.vectors = self._index.vectors
        else:
            self.vectors = self._bc.value
        return self

    def search(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows x k indexes, rows x k cosines) for the query ``rows`` (one block)."""
        m = self.vectors
        assert m is not None, "call open() in the task first"
        if self.approximate:
            assert self._index is not None
            return _approximate_block(self._index, rows, m, self.k, self.exact_rows)
        if self._scores is None or len(self._scores) < len(rows):
            self._scores = np.empty((max(len(rows), self.rows), len(m)), dtype=np.float32)
        return top_k_block(rows, m[rows], m, self.k, out=self._scores)

    def release(self) -> None:
        self._bc.unpersist()


def top_k_similar(spark: SparkSession, matrix: np.ndarray, *, k: int, block_bytes: int,
                  partitions: int, search: str, params: ann.Params | None = None,
                  queries: np.ndarray | None = None) -> DataFrame:
    """All-items (or ``queries``) cosine top-k -> (item_index, rank, similar_index, score).

    Exactly min(k, V-1) rows per query item, ranks 1..k, never the item itself.
    ``search="ivf"`` / ``"hnsw"`` (with ``params``: ann.IvfParams / ann.HnswParams) builds an
    approximate index on the driver now and searches it in the tasks (see item2vec.ann);
    scores are still exact cosines.
    """
    searcher = Searcher(spark, matrix, k=k, block_bytes=block_bytes, search=search,
                        params=params)
    kk = searcher.k
    qidx = (np.arange(searcher.size, dtype=np.int32) if queries is None
            else np.asarray(queries, dtype=np.int32))
    sc = spark.sparkContext
    slots = partitions or sc.defaultParallelism
    rows = searcher.rows
    if searcher.approximate:  # several blocks per task slot: each faiss call is one thread
        rows = int(max(16, min(rows, -(-len(qidx) // (_BLOCKS_PER_SLOT * slots)))))
    bc_q = sc.broadcast(qidx)
    n_blocks = max(1, -(-len(qidx) // rows))
    n_parts = min(n_blocks, slots)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        allq = bc_q.value
        found = searcher.open()
        ranks = np.arange(1, kk + 1, dtype=np.int32)
        for batch in batches:
            for b in batch.column(0).to_numpy():
                qb = allq[b * rows:(b + 1) * rows]
                if kk <= 0 or len(qb) == 0:
                    continue
                idx, vals = found.search(qb)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(np.repeat(qb, kk)), pa.array(np.tile(ranks, len(qb))),
                     pa.array(idx.ravel()), pa.array(vals.ravel())],
                    names=[INDEX, RANK, SIMILAR_INDEX, SCORE])

    blocks = spark.range(0, n_blocks, 1, numPartitions=n_parts).withColumnRenamed("id", "block")
    return blocks.mapInArrow(run, PAIRS_SCHEMA)


def _approximate_block(index: ann.LoadedIndex, qb: np.ndarray, m: np.ndarray, k: int,
                       exact_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Index candidates re-scored exactly; rows the index cannot fill are searched exactly."""
    idx, vals, short = ann.select_top_k(qb, index.search(qb, k + 1), m, k)
    for start in range(0, len(short), exact_rows):  # rare: bounded blocks of exact search
        rows = short[start:start + exact_rows]
        idx[rows], vals[rows] = top_k_block(qb[rows], m[qb[rows]], m, k)
    return idx, vals


def with_item_ids(pairs: DataFrame, vocab: DataFrame) -> DataFrame:
    """Replace indexes by item ids -> (item_id, rank, similar_item_id, score)."""
    ids = F.broadcast(vocab.select(ITEM, INDEX))
    sim_ids = F.broadcast(vocab.select(F.col(ITEM).alias(SIMILAR_ITEM),
                                       F.col(INDEX).alias(SIMILAR_INDEX)))
    return (pairs.join(ids, INDEX).join(sim_ids, SIMILAR_INDEX)
            .select(ITEM, RANK, SIMILAR_ITEM, SCORE))
