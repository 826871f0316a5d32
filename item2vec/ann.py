"""Approximate cosine top-k with faiss indexes, for catalogues too large for exact search.

Exact all-pairs search costs V x V x dim: fine at 100k items, hours at a few million. An
approximate index answers each query by scoring a small part of the catalogue instead of all V.
It is built once on the driver (the vectors are already there), serialised to a byte array and
broadcast; every Python worker deserialises it once and searches its blocks of query rows (one
faiss call per block) for k + 1 neighbours (the query finds itself). The returned ids are then
re-scored exactly, so ``score`` is the true cosine and the output keeps the exact path's
contract: ranks 1..k, sorted by score desc then index asc, never the item itself, exactly
min(k, V-1) rows. A row for which the index returns fewer valid ids (faiss pads with -1) is
answered by exact search instead.

Two indexes, both on the L2-normalised vectors with inner product (= cosine):

``ivf``   IVF-Flat: k-means cuts the catalogue into ``nlist`` cells; a query scores the items
          of the ``nprobe`` cells whose centroids are closest. The centroids are trained on a
          seeded sample of the vectors; faiss's k-means is seeded too.
``hnsw``  HNSW graph: a query walks a navigable small-world graph (``ef_search`` candidates).
          faiss seeds the level draw with a fixed constant and the graph is built with one
          thread (insertion order then fixes every link).

Both are deterministic for a fixed input, and searching is deterministic (one thread per task).

faiss-cpu is an optional dependency (the ``ann`` extra); this module imports it lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from item2vec.errors import BadInput

INSTALL_HINT = "pip install 'item2vec-spark[ann]'"
LIBRARY = "faiss-cpu"
METHODS = ("ivf", "hnsw")
# Seed of the k-means training sample and of faiss's k-means initialisation.
IVF_SEED = 1234
# Training rows per IVF cell: k-means runs on min(V, 64 x nlist) rows (faiss asks for >= 39
# and samples down to 256 by default; 64 keeps the driver's training short).
IVF_TRAIN_PER_LIST = 64
# Fewest items per cell: nlist is capped at V / 39 so that k-means has enough points.
IVF_MIN_PER_LIST = 39


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

    def describe(self, items: int | None = None) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search}


@dataclass(frozen=True)
class IvfParams:
    """Cells (``nlist``, 0 = auto: about 4 sqrt(V)) and cells searched per query (``nprobe``)."""

    nlist: int
    nprobe: int

    @classmethod
    def from_config(cls, similar: Any) -> IvfParams:
        """From a SimilarConfig (keys ivf_nlist, ivf_nprobe)."""
        return cls(similar.ivf_nlist, similar.ivf_nprobe)

    def lists(self, items: int) -> int:
        """Cells for ``items`` vectors: nlist, or 4 sqrt(V) when 0; at most V / 39 (>= 1), so
        that k-means has enough points per centroid."""
        want = self.nlist or round(4 * math.sqrt(items))
        return int(max(1, min(want, items // IVF_MIN_PER_LIST)))

    def describe(self, items: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"nlist": self.nlist, "nprobe": self.nprobe,
                               "train_per_list": IVF_TRAIN_PER_LIST, "seed": IVF_SEED}
        if items is not None:
            out["nlist_used"] = self.lists(items)
        return out


Params = HnswParams | IvfParams


def params_for(search: str, similar: Any) -> Params | None:
    """The index parameters of ``search`` from a SimilarConfig (None for exact search)."""
    if search == "hnsw":
        return HnswParams.from_config(similar)
    if search == "ivf":
        return IvfParams.from_config(similar)
    return None


def faiss_module(search: str = "ivf") -> Any:
    """The faiss module, or BadInput (exit 2) telling the user which extra to install."""
    try:
        import faiss
    except ImportError:
        raise BadInput(f"similar.search={search} needs {LIBRARY}, which is not installed: "
                       f"{INSTALL_HINT}") from None
    return faiss


def require(search: str) -> None:
    """Fail fast (before Spark does any work) when ``search`` needs a missing library."""
    if search in METHODS:
        faiss_module(search)


def describe(params: Params, items: int | None = None) -> dict[str, Any]:
    """What the manifest records about the index: library, version and parameters."""
    faiss = faiss_module()
    return {"library": LIBRARY, "version": faiss.__version__, **params.describe(items),
            "metric": "inner_product_on_normalized"}


def training_sample(items: int, lists: int) -> np.ndarray:
    """Seeded, sorted row sample for k-means: min(V, IVF_TRAIN_PER_LIST x nlist) rows."""
    n = min(items, IVF_TRAIN_PER_LIST * lists)
    if n == items:
        return np.arange(items)
    return np.sort(np.random.default_rng(IVF_SEED).choice(items, n, replace=False))


def build_index(normalized: np.ndarray, params: Params) -> np.ndarray:
    """The index over the L2-normalised rows (inner product = cosine), serialised to uint8.

    HNSW is built with one thread: with several, the insertion races change the links. IVF
    uses faiss's threads: its k-means and its cell assignment give the same bytes with 1 or 2
    threads (checked on 100k and 1M vectors and in tests/test_ann.py), since each centroid sum
    and each vector's assignment is computed by a single thread in a fixed order.
    """
    faiss = faiss_module()
    data = np.ascontiguousarray(normalized, dtype=np.float32)
    d = data.shape[1]
    threads = faiss.omp_get_max_threads()
    try:
        if isinstance(params, HnswParams):
            faiss.omp_set_num_threads(1)
            index = faiss.IndexHNSWFlat(d, params.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params.ef_construction
        else:
            lists = params.lists(len(data))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = IVF_SEED  # k-means is spherical for inner product (faiss default)
            index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST  # no further subsampling
            index.cp.min_points_per_centroid = 1  # >= 39 per cell already: no warning
            index.train(data[training_sample(len(data), lists)])
        index.add(data)
        return faiss.serialize_index(index)
    finally:
        faiss.omp_set_num_threads(threads)


class LoadedIndex:
    """A deserialised index plus its vectors in item order (for re-scoring and fallback)."""

    def __init__(self, blob: np.ndarray, params: Params) -> None:
        faiss = faiss_module()
        faiss.omp_set_num_threads(1)  # Spark already runs one task per core
        self.index = faiss.deserialize_index(blob)
        n, d = self.index.ntotal, self.index.d
        if isinstance(params, HnswParams):
            self.index.hnsw.efSearch = params.ef_search
            storage = faiss.downcast_index(self.index.storage)
            # A view into the index's own copy: valid as long as self.index lives.
            self.vectors = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)
        else:
            self.index.nprobe = min(params.nprobe, self.index.nlist)
            self.vectors = _ivf_vectors(faiss, self.index)

    def search(self, queries: np.ndarray, width: int) -> np.ndarray:
        """Candidate ids (len(queries) x width, -1 where the index found none): one call."""
        _, ids = self.index.search(self.vectors[queries], width)
        return ids


def _ivf_vectors(faiss: Any, index: Any) -> np.ndarray:
    """The vectors of an IVF-Flat index put back in item order (the cells store them by cell),
    so that only the index travels."""
    out = np.empty((index.ntotal, index.d), dtype=np.float32)
    lists = index.invlists
    for cell in range(index.nlist):
        size = lists.list_size(cell)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(cell), size)
            codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size)
            out[ids] = codes.view(np.float32).reshape(size, index.d)
    return out


# One index per Python worker process, keyed per top_k_similar call: loaded by the first task,
# reused by the next ones (workers are reused). Only the latest is kept: memory stays bounded.
_LOADED: dict[str, LoadedIndex] = {}


def loaded(key: str, blob: Any, params: Params) -> LoadedIndex:
    """The worker's cached index for ``key``; ``blob`` is a broadcast of the serialised index."""
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = LoadedIndex(blob.value, params)
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
