"""Approximate cosine top-k with an HNSW graph (faiss), for catalogues too large for exact search.

Exact all-pairs search costs V x V x dim: fine at 100k items, hours at a few million. An HNSW
graph answers each query by visiting a few thousand items instead of all V. The graph is built
once on the driver (the vectors are already there), serialised to a byte array and broadcast;
every Python worker deserialises it once and searches its blocks of query rows for k + 1
neighbours (the query finds itself). The returned ids are then re-scored exactly, so ``score``
is the true cosine and the output keeps the exact path's contract: ranks 1..k, sorted by score
desc then index asc, never the item itself, exactly min(k, V-1) rows. A row for which the graph
returns fewer valid ids (faiss pads with -1) is answered by exact search instead.

Deterministic for a fixed input: faiss seeds the HNSW level draw with a fixed constant, the
graph is built with one thread (insertion order then fixes every link) and the search is a
deterministic greedy walk.

faiss-cpu is an optional dependency (the ``ann`` extra); this module imports it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from item2vec.errors import BadInput

INSTALL_HINT = "pip install 'item2vec-spark[ann]'"
LIBRARY = "faiss-cpu"


@dataclass(frozen=True)
class HnswParams:
    """Graph degree (``m``), build beam (``ef_construction``) and search beam (``ef_search``)."""

    m: int
    ef_construction: int
    ef_search: int

    @classmethod
    def from_config(cls, similar: Any) -> HnswParams:
        """From a SimilarConfig (keys hnsw_m, hnsw_ef_construction, hnsw_ef_search)."""
        return cls(similar.hnsw_m, similar.hnsw_ef_construction, similar.hnsw_ef_search)


def faiss_module() -> Any:
    """The faiss module, or BadInput (exit 2) telling the user which extra to install."""
    try:
        import faiss
    except ImportError:
        raise BadInput(f"similar.search=hnsw needs {LIBRARY}, which is not installed: "
                       f"{INSTALL_HINT}") from None
    return faiss


def require(search: str) -> None:
    """Fail fast (before Spark does any work) when ``search`` needs a missing library."""
    if search == "hnsw":
        faiss_module()


def describe(params: HnswParams) -> dict[str, Any]:
    """What the manifest records about the index: library, version and parameters."""
    faiss = faiss_module()
    return {"library": LIBRARY, "version": faiss.__version__, "m": params.m,
            "ef_construction": params.ef_construction, "ef_search": params.ef_search,
            "metric": "inner_product_on_normalized"}


def build_index(normalized: np.ndarray, params: HnswParams) -> np.ndarray:
    """HNSW graph over the L2-normalised rows (inner product = cosine), serialised to uint8.

    Built with one thread so that the graph, and hence every neighbour list, is reproducible.
    """
    faiss = faiss_module()
    data = np.ascontiguousarray(normalized, dtype=np.float32)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index = faiss.IndexHNSWFlat(data.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.add(data)
        return faiss.serialize_index(index)
    finally:
        faiss.omp_set_num_threads(threads)


class LoadedIndex:
    """A deserialised index plus a no-copy view of the vectors it stores (for re-scoring)."""

    def __init__(self, blob: np.ndarray, ef_search: int) -> None:
        faiss = faiss_module()
        faiss.omp_set_num_threads(1)  # Spark already runs one task per core
        self.index = faiss.deserialize_index(blob)
        self.index.hnsw.efSearch = ef_search
        storage = faiss.downcast_index(self.index.storage)
        n, d = self.index.ntotal, self.index.d
        # A view into the index's own copy: valid as long as self.index lives.
        self.vectors = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)

    def search(self, queries: np.ndarray, width: int) -> np.ndarray:
        """Candidate ids (len(queries) x width, -1 where the graph found none)."""
        _, ids = self.index.search(self.vectors[queries], width)
        return ids


# One index per Python worker process, keyed per top_k_similar call: loaded by the first task,
# reused by the next ones (workers are reused). Only the latest is kept: memory stays bounded.
_LOADED: dict[str, LoadedIndex] = {}


def loaded(key: str, blob: Any, ef_search: int) -> LoadedIndex:
    """The worker's cached index for ``key``; ``blob`` is a broadcast of the serialised index."""
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = LoadedIndex(blob.value, ef_search)
    return _LOADED[key]


def select_top_k(queries: np.ndarray, candidates: np.ndarray, m: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact re-scoring and ordering of approximate candidates.

    ``candidates`` (n x width ids, -1 = none) may contain the query itself; it is dropped.
    Returns (indexes, scores, short): n x k sorted by true cosine desc then index asc, and the
    positions of rows with fewer than k valid candidates (their entries are placeholders; the
    caller answers them exactly).
    """
    ids = candidates.astype(np.int64, copy=False)
    valid = (ids >= 0) & (ids != queries[:, None])
    safe = np.where(valid, ids, 0)
    scores = np.einsum("nd,nwd->nw", m[queries], m[safe])
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    tie = np.where(valid, ids, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -scores), axis=1)[:, :k]
    short = np.flatnonzero(np.count_nonzero(valid, axis=1) < k)
    return (np.take_along_axis(safe, order, axis=1).astype(np.int32),
            np.take_along_axis(scores, order, axis=1), short)
