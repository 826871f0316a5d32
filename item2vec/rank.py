"""Ranking similar items: co-occurrence evidence and embedding cosine, ranked together.

Why a hybrid: on real logs the embedding alone predicts the next item worse than plain
co-occurrence counts (direct transitions dominate, and items below min_count get no vector),
while the embedding places items whose counts are thin. Mixing both evidences beats each
(Vasile et al., RecSys 2016), but the best mix differs by log, so the weights can be chosen per
run on a validation slice of the training sessions (see ``grid_metrics``).

Per item i, the candidates are its ``candidates`` embedding neighbours plus its strongest
co-occurrence partners (up to ``partners`` by symmetric co-occurrence and as many by forward
transitions, within ``window`` positions). Each candidate j carries three features:

- symmetric co-occurrence: times i and j occurred at most ``window`` positions apart (either
  order), divided by the largest such count among i's partners;
- forward transitions: occurrences of j after i within ``window`` positions weighted
  1 / distance (sequential rules), divided by the largest among i's partners;
- cosine: the embedding cosine (none when either item has no vector; counts as 0).

and the score is ``weights . features``. Normalising per item makes the weights comparable
across items and logs: an item's best partner scores 1 whether it was seen 3 times or 30,000.
Ties go to the higher cosine, then to the smaller item id. The same pass also ranks the
reference lists the evaluation compares with: the embedding alone, item co-occurrence kNN and
sequential rules.

Everything per item runs in vectorised numpy per evidence chunk (``rank_batch``): items are
integer keys of the run's catalogue, the vectors and lookup arrays come from broadcasts, and no
candidate pair is joined or shuffled on its way. The evidence tasks do most of it while a
chunk's sums are in memory (``ChunkFinish``): they search its items' embedding neighbours
(item2vec.similar.Searcher), score the validation slice for every weight mix, and keep only the
partner rows the lists can read; once the weights are chosen, ``rank_items`` ranks the stored
chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark import SparkContext
from pyspark.broadcast import Broadcast
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from item2vec import cooccurrence as co
from item2vec.cooccurrence import FEATURES, OTHER
from item2vec.events import ITEM
from item2vec.similar import Searcher

SIMILAR_ITEM, RANK, SCORE, COSINE, COOCCURRENCE, MODEL = (
    "similar_item_id", "rank", "score", "cosine", "cooccurrence", "model")
SYM_N, FWD_N = "sym_n", "fwd_n"
# Chunk columns the evidence tasks add (see ChunkFinish): each item's embedding neighbours (keys,
# in rank order) and their cosines.
NBR, NBR_COS = "nbr_id", "nbr_cos"
MODES = ("hybrid", "embedding", "cooccurrence")
# Model codes of the rows rank_batch emits (the published list and the reference lists).
LIST_MODELS = ("published", "embedding", "cooc_knn", "sequential_rules")
# The cosine a missing vector counts as when breaking ties (below every real cosine).
_NO_COSINE = -2.0

# rank_items' lists: one row per model and item, its list in rank order as parallel arrays (a
# row per list, not per entry, is what makes moving the lists out of Python cheap); flat_lists
# gives a row per entry.
LISTS_SCHEMA = (f"{MODEL} tinyint, {ITEM} int, {OTHER} array<int>, {SCORE} array<float>, "
                f"{COSINE} array<float>, {COOCCURRENCE} array<bigint>")
GRID_SUMS = ("hits", "rr", "gain")  # per cut-off: hits, reciprocal ranks, NDCG gains


@dataclass(frozen=True)
class Weights:
    """Weights of the hybrid score: symmetric co-occurrence, forward transitions, cosine; and
    the decay of the forward evidence with distance (1: 1/d, 2: 1/d^2)."""

    cooccurrence: float
    forward: float
    cosine: float
    decay: int = 1

    def as_list(self) -> list[float]:
        return [self.cooccurrence, self.forward, self.cosine]

    def describe(self) -> dict[str, float]:
        return {"cooccurrence": self.cooccurrence, "forward": self.forward,
                "cosine": self.cosine, "forward_decay": self.decay}


def mode_weights(mode: str, weights: Weights) -> Weights:
    """The weights a mode ranks items that have a vector with (items without one always use the
    co-occurrence part: nothing else is known about them)."""
    if mode == "embedding":
        return Weights(0.0, 0.0, 1.0, weights.decay)
    if mode == "cooccurrence":
        return Weights(weights.cooccurrence, weights.forward, 0.0, weights.decay)
    return weights


@dataclass(frozen=True)
class Params:
    """What rank_batch needs besides the data (plain values, pickled into the tasks)."""

    k: int  # rows per item (vocabulary items: at most vocab_rows - 1)
    candidates: int  # embedding neighbours per item
    partners: int  # strongest partners per evidence
    weights: Weights
    mode: str
    references: bool  # also rank the reference lists
    ref_k: int = 20
    grid: tuple[Weights, ...] = ()  # weight mixes scored by output="grid" ...
    grid_ks: tuple[int, ...] = (10, 20)  # ... at these cut-offs
    cooc_alpha: float = 0.5
    cooc_lambda: float = 20.0
    rules_from_forward: bool = False  # the rules window is the forward window: rules = fwd1


def shipped(params: Params, *, grid: bool) -> tuple[str, ...]:
    """The evidence features rank_batch reads (for the ``grid`` output or the lists), so only
    they are counted and read: forward transitions at the decays scored (1/d always: it picks the
    forward partners), and the reference lists' own sums when those are ranked (``rules`` only
    when it is not fwd1)."""
    decays = {w.decay for w in params.grid} if grid else {params.weights.decay}
    names = ["near", "fwd1", *[f"fwd{d}" for d in sorted(decays) if d != 1]]
    if params.references and not grid:
        names += ["near_c", *([] if params.rules_from_forward else ["rules"])]
    return tuple(names)


@dataclass(frozen=True)
class Lookups:
    """Per-run arrays indexed by catalogue key, broadcast to the rank tasks.

    ``row_of_key``: matrix row of each vocabulary key (-1: no vector); keys beyond it have no
    vector. ``key_of_row``: the inverse. ``id_rank``: position of each key in item-id order
    (ties go to the smaller id). ``frequency``: training occurrences of each key.
    """

    row_of_key: np.ndarray
    key_of_row: np.ndarray
    id_rank: np.ndarray
    frequency: np.ndarray


# -- the vectorised core ---------------------------------------------------------------------
# Rows per chunk when bounding a segment's k-th largest value from below (see _top).
_CHUNK = 8


def _segment_max(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """Largest value per segment (0 for empty ones and below), ``seg`` sorted ascending."""
    out = np.zeros(n, dtype=np.float64)
    if len(seg):
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        out[seg[starts]] = np.maximum(np.maximum.reduceat(values, starts), 0.0)
    return out


def _first_per_segment(seg: np.ndarray, order: np.ndarray, limit: np.ndarray | int,
                       n: int) -> np.ndarray:
    """Positions (into the unsorted arrays) of the first ``limit`` entries of each segment in
    ``order`` (which must be sorted by segment first)."""
    s = seg[order]
    counts = np.bincount(s, minlength=n)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(order)) - starts[s]
    lim = limit if np.isscalar(limit) else np.asarray(limit)[s]
    return order[pos < lim]


def _union_positions(parts: Sequence[np.ndarray], n: int) -> np.ndarray:
    """The sorted distinct positions (< n) in ``parts``: np.unique of their concatenation, by
    marking instead of sorting."""
    mark = np.zeros(n, dtype=bool)
    for part in parts:
        mark[part] = True
    return np.flatnonzero(mark)


def _ranked(seg: np.ndarray, value: np.ndarray, ids: np.ndarray, *, n_seg: int,
            n_ids: int) -> np.ndarray:
    """Positions of the rows with value > 0 by segment, then value descending, then id rank
    (``ids``, unique within a segment): ``np.lexsort((ids, -value, seg))``'s order, from one
    argsort of a packed int64 key (half lexsort's time: this is most of the ranking's numpy
    work), or lexsort itself when the key would not fit in 63 bits.

    The value's part of the key is its float32 bit pattern when the values are float32 (the
    evidence sums are; a positive float's bits order like the float), else its rank among the
    distinct values (a sort more)."""
    ok = np.flatnonzero(value > 0)
    v = value[ok]
    id_bits, seg_bits = int(n_ids).bit_length(), int(n_seg).bit_length()
    v32 = v.astype(np.float32)
    if id_bits + 31 + seg_bits <= 63 and np.array_equal(v32, v):
        level, level_bits = np.int64(0x7FFFFFFF) - v32.view(np.int32), 31
    else:
        levels, level = np.unique(-v, return_inverse=True)
        level_bits = len(levels).bit_length()
    if id_bits + level_bits + seg_bits > 63:
        return ok[np.lexsort((ids[ok], -v, seg[ok]))]
    key = ((seg[ok].astype(np.int64) << (level_bits + id_bits))
           | (level.astype(np.int64) << id_bits) | ids[ok].astype(np.int64))
    return ok[np.argsort(key)]


def _score_order(seg: np.ndarray, score: np.ndarray, tie: np.ndarray, ids: np.ndarray, *,
                 n_seg: int) -> np.ndarray:
    """``np.lexsort((ids, -tie, -score, seg))`` for float32 ``score``: one argsort of (seg,
    score descending) packed into an int64 key, then only the rows tying on both re-sorted by
    tie and id (a hybrid score rarely ties; a count-only one does more often)."""
    if int(n_seg).bit_length() + 32 > 63:
        return np.lexsort((ids, -tie, -score, seg))
    bits = (score + np.float32(0)).view(np.int32).astype(np.int64)  # -0.0 -> +0.0
    ordered = np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)  # increases with the float
    key = (seg.astype(np.int64) << 32) | ((1 << 31) - 1 - ordered)
    order = np.argsort(key)
    sorted_key = key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    if same.any():
        in_tie = np.zeros(len(key), dtype=bool)
        in_tie[1:] |= same
        in_tie[:-1] |= same
        at = np.flatnonzero(in_tie)
        rows = order[at]
        order[at] = rows[np.lexsort((ids[rows], -tie[rows], key[rows]))]
    return order


def _top(seg: np.ndarray, value: np.ndarray, ids: np.ndarray, limit: int, *, n_seg: int,
         n_ids: int) -> np.ndarray:
    """``_first_per_segment(seg, _ranked(seg, value, ids, ...), limit, n_seg)`` (the first
    ``limit`` rows with value > 0 of each segment, in rank order) for ``seg`` sorted ascending,
    without sorting every row: an item's partners are mostly weak, and only rows at least as
    strong as its limit-th strongest can be in its top.

    A segment's limit-th largest value is bounded from below by the limit-th largest of the
    maxima of its chunks of _CHUNK rows (those are limit distinct rows at least that large);
    rows below the bound are dropped before the exact sort. Segments with fewer than
    limit x _CHUNK rows keep every row."""
    n = len(seg)
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    positive = np.where(value > 0, value, 0.0)
    counts = np.bincount(seg, minlength=n_seg)
    chunks = np.where(counts >= limit * _CHUNK, -(-counts // _CHUNK), 0)  # pruned segments only
    threshold = np.zeros(n_seg)
    if n and chunks.any():
        starts = np.cumsum(counts) - counts
        first_chunk = np.cumsum(chunks) - chunks
        c_seg = np.repeat(np.arange(n_seg), chunks)
        at = starts[c_seg] + (np.arange(len(c_seg)) - first_chunk[c_seg]) * _CHUNK
        # a reduceat range runs to the next boundary: end the pruned segments' last chunks too
        ends = (starts + counts)[chunks > 0]
        bounds = _union_positions([at, ends[ends < n]], n)
        c_max = np.maximum.reduceat(positive, bounds)[np.searchsorted(bounds, at)]
        order = np.lexsort((-c_max, c_seg))
        pruned = np.flatnonzero(chunks)
        threshold[pruned] = c_max[order[first_chunk[pruned] + limit - 1]]
    keep = np.flatnonzero(positive >= np.maximum(threshold[seg], np.finfo(float).tiny))
    ranked = keep[_ranked(seg[keep], value[keep], ids[keep], n_seg=n_seg, n_ids=n_ids)]
    return _first_per_segment(seg, ranked, limit, n_seg)


@dataclass
class Batch:
    """One evidence chunk as numpy: query keys and their partners' features (see FEATURES;
    those not read are zeros, ``rules`` then is fwd1)."""

    keys: np.ndarray  # (B,) int64 catalogue keys of the query items
    seg: np.ndarray  # (P,) position in ``keys`` of each partner row
    other: np.ndarray  # (P,) partner keys
    near: np.ndarray  # (P,) symmetric co-occurrences within the hybrid window
    fwd1: np.ndarray  # (P,) forward transitions within the forward window, 1/d
    fwd2: np.ndarray  # (P,) ... 1/d^2
    near_c: np.ndarray  # (P,) symmetric co-occurrences within the cooc_knn window
    rules: np.ndarray  # (P,) forward transitions within the rules window, 1/d
    pair_seg: np.ndarray | None = None  # validation pairs: position of their prev item ...
    pair_next: np.ndarray | None = None  # ... and the key of the true next item
    nbr_seg: np.ndarray | None = None  # embedding neighbours when known: position in keys ...
    nbr_other: np.ndarray | None = None  # ... their keys, by item then rank ...
    nbr_cos: np.ndarray | None = None  # ... and cosines

    @classmethod
    def from_chunk(cls, chunk: pa.RecordBatch, names: Sequence[str], *,
                   fit: bool = False) -> Batch:
        """The features ``names`` of a co.evidence chunk (with ``fit``, their fit-part sums)."""
        keys = chunk.column(ITEM).to_numpy().astype(np.int64)
        offsets = chunk.column(OTHER).offsets.to_numpy()
        have = set(chunk.schema.names)

        def flat(name: str) -> np.ndarray:  # the values of one partner column, chunk-wide
            lists = chunk.column(name)
            if not np.array_equal(lists.offsets.to_numpy(), offsets):
                raise RuntimeError(f"partner column {name} is not aligned with {OTHER}")
            return lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(
                zero_copy_only=False)

        other = flat(OTHER).astype(np.int64)
        zeros = np.zeros(len(other))
        fields = {}
        for name in FEATURES:
            column = name + co.FIT if fit else name
            if name in names and column in have:
                fields[name] = flat(column).astype(np.float64)
        fields = {name: fields.get(name, zeros) for name in FEATURES} | {
            "rules": fields.get("rules", fields.get("fwd1", zeros))}
        batch = cls(keys, np.repeat(np.arange(len(keys)), np.diff(offsets)), other,
                    *(fields[name] for name in FEATURES))
        if NBR in have:
            lists, cos = chunk.column(NBR), chunk.column(NBR_COS)
            at = lists.offsets.to_numpy()
            batch.nbr_seg = np.repeat(np.arange(len(keys)), np.diff(at))
            batch.nbr_other = lists.values.slice(at[0], at[-1] - at[0]).to_numpy().astype(np.int64)
            batch.nbr_cos = cos.values.slice(at[0], at[-1] - at[0]).to_numpy(
                zero_copy_only=False).astype(np.float64)
        return batch

    def subset(self, keep: np.ndarray) -> Batch:
        """The query items where ``keep`` (a mask over ``keys``) is true, with their rows."""
        if keep.all():
            return self
        position = np.cumsum(keep) - 1
        rows = keep[self.seg]
        out = Batch(self.keys[keep], position[self.seg[rows]], self.other[rows],
                    *(getattr(self, name)[rows] for name in FEATURES))
        if self.nbr_seg is not None:
            e = keep[self.nbr_seg]
            out.nbr_seg = position[self.nbr_seg[e]]
            out.nbr_other, out.nbr_cos = self.nbr_other[e], self.nbr_cos[e]
        return out

    def with_pairs(self, prev: np.ndarray, nxt: np.ndarray) -> Batch:
        """The query items that are the prev item of a validation pair (prev -> nxt keys),
        with those pairs attached."""
        mine = self.subset(np.isin(self.keys, prev))
        inside = np.isin(prev, mine.keys)
        order = np.argsort(mine.keys)
        mine.pair_seg = order[np.searchsorted(mine.keys, prev[inside], sorter=order)]
        mine.pair_next = nxt[inside]
        return mine


def _lookup(codes: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` sits in ``codes`` (sorted, unique): (position, clamped to a
    valid one; whether it is there)."""
    at = np.minimum(np.searchsorted(codes, wanted), max(len(codes) - 1, 0))
    found = codes[at] == wanted if len(codes) else np.zeros(len(wanted), bool)
    return at, found


def _matrix_rows(keys: np.ndarray, lookups: Lookups) -> np.ndarray:
    """Matrix row of each catalogue key (-1: no vector)."""
    inside = keys < len(lookups.row_of_key)
    out = np.full(len(keys), -1, dtype=np.int64)
    out[inside] = lookups.row_of_key[keys[inside]]
    return out


def search_neighbours(keys: np.ndarray, searcher: Searcher | None, lookups: Lookups, *,
                      want: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embedding neighbours of the ``keys`` that have a vector (and ``want``, a mask, when
    given): (position in ``keys``, neighbour key, cosine), by item then rank."""
    qrow = _matrix_rows(keys, lookups)
    ask = np.flatnonzero((qrow >= 0) if want is None else (qrow >= 0) & want)
    if searcher is None or searcher.k <= 0 or not len(ask):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    idx_parts, cos_parts = [], []
    for start in range(0, len(ask), searcher.rows):
        idx, vals = searcher.search(qrow[ask[start:start + searcher.rows]])
        idx_parts.append(idx)
        cos_parts.append(vals)
    idx = np.concatenate(idx_parts)
    return (np.repeat(ask, idx.shape[1]), lookups.key_of_row[idx.ravel()].astype(np.int64),
            np.concatenate(cos_parts).ravel().astype(np.float64))


def rank_batch(batch: Batch, searcher: Searcher | None, lookups: Lookups, params: Params,
               *, output: str = "lists") -> dict[str, np.ndarray]:
    """Rank one batch: the published list (and the reference lists) of every query item, or
    (``output="grid"``) the validation sums of every weight mix of ``params.grid``.

    The embedding neighbours are the batch's own when it carries them, else searched now;
    ``searcher`` (opened) also gives the vectors for the partners' cosines. Returns column
    arrays; see LISTS_SCHEMA (keys are catalogue keys, cosine NaN = none).
    """
    n = len(batch.keys)
    rank_of = lookups.id_rank
    span = np.int64(max(int(rank_of.shape[0]), 1))
    # co.evidence gives each (item, partner) one row, in that order; rows from elsewhere may
    # repeat a partner or come in any order: they are summed and sorted first
    codes = batch.seg * span + batch.other
    inverse = None
    if len(codes) > 1 and not (codes[1:] > codes[:-1]).all():
        codes, inverse = np.unique(codes, return_inverse=True)
    seg, other = (batch.seg, batch.other) if inverse is None else (codes // span, codes % span)

    def summed(values: np.ndarray) -> np.ndarray:
        if inverse is None:
            return values
        return np.bincount(inverse, weights=values, minlength=len(codes))

    near = summed(batch.near)
    decays = {w.decay for w in params.grid} if output == "grid" else {params.weights.decay}
    fwd = {d: summed(getattr(batch, f"fwd{d}")) for d in decays | {1}}
    # strongest partners by each evidence (partners with evidence in the window only)
    ids = rank_of[other]

    def strongest(value: np.ndarray, limit: int = params.partners) -> np.ndarray:
        return _top(seg, value, ids, limit, n_seg=n, n_ids=int(span))  # in (item, rank) order

    by_forward = strongest(fwd[1])
    picked = _union_positions([strongest(near), by_forward], len(seg))
    near_max = _segment_max(near, seg, n)
    # embedding neighbours of the query items that have a vector
    qrow = _matrix_rows(batch.keys, lookups)
    has_vector = qrow >= 0
    if batch.nbr_seg is not None:
        e_seg, e_other, e_cos = batch.nbr_seg, batch.nbr_other, batch.nbr_cos
    else:
        e_seg, e_other, e_cos = search_neighbours(batch.keys, searcher, lookups)
    vectors = searcher.vectors if searcher is not None and has_vector.any() else None
    # features of embedding candidates from their evidence (0 when they never co-occurred)
    e_code = e_seg * span + e_other
    at, found = _lookup(codes, e_code)  # codes: sorted, one per (item, partner)
    row_of = at[found]
    e_near = np.zeros(len(e_code))
    e_near[found] = near[row_of]
    e_fwd = {}
    for d, values in ((d, fwd[d]) for d in decays | {1}):
        e_fwd[d] = np.zeros(len(e_code))
        e_fwd[d][found] = values[row_of]
    # cosines of the partner candidates that have a vector on both sides
    p_seg, p_other = seg[picked], other[picked]
    p_cos = np.full(len(picked), np.nan)
    if vectors is not None:
        a, b = qrow[p_seg], _matrix_rows(p_other, lookups)
        ok = (a >= 0) & (b >= 0)
        p_cos[ok] = np.einsum("ij,ij->i", vectors[a[ok]], vectors[b[ok]])
    # the union of both candidate sets, each pair once
    c_seg = np.concatenate([e_seg, p_seg])
    c_other = np.concatenate([e_other, p_other])
    c_near = np.concatenate([e_near, near[picked]])
    c_cos = np.concatenate([e_cos, p_cos])
    c_emb = np.concatenate([np.ones(len(e_seg), bool), np.zeros(len(p_seg), bool)])
    _, first = np.unique(c_seg * span + c_other, return_index=True)
    c_seg, c_other, c_near, c_cos, c_emb = (
        x[first] for x in (c_seg, c_other, c_near, c_cos, c_emb))
    sym_n = _normalised(c_near, near_max, c_seg)
    fwd_n = {d: _normalised(np.concatenate([e_fwd[d], fwd[d][picked]])[first],
                            _segment_max(fwd[d], seg, n), c_seg) for d in decays}
    if output == "grid":
        return _grid(batch, c_seg, c_other, sym_n, fwd_n, c_cos, rank_of, span, params)

    w = mode_weights(params.mode, params.weights)
    cos0 = np.nan_to_num(c_cos, nan=0.0)
    fwd_w = fwd_n[params.weights.decay]
    score = w.cooccurrence * sym_n + w.forward * fwd_w + w.cosine * cos0
    vec_q = has_vector[c_seg]
    if params.mode == "embedding":  # vector items: their neighbours by cosine only
        fallback = params.weights
        score = np.where(vec_q, score, fallback.cooccurrence * sym_n + fallback.forward * fwd_w)
        keep = ~vec_q | c_emb
        c_seg, c_other, c_near, c_cos, score = (x[keep] for x in (c_seg, c_other, c_near,
                                                                   c_cos, score))
    score32 = score.astype(np.float32)
    tie = np.nan_to_num(c_cos, nan=_NO_COSINE)
    order = _score_order(c_seg, score32, tie, rank_of[c_other], n_seg=n)
    per_item = np.where(has_vector, min(params.k, max(len(lookups.key_of_row) - 1, 0)),
                        params.k)
    top = _first_per_segment(c_seg, order, per_item, n)
    out = _emit(0, batch.keys, c_seg[top], c_other[top], score32[top], c_cos[top],
                c_near[top].astype(np.int64))
    if not params.references:
        return out
    parts = [out]
    # the embedding alone: the first ref_k neighbours by cosine
    e_top = _first_per_segment(e_seg, np.arange(len(e_seg)), params.ref_k, n)
    if len(e_seg):
        e_near_s = e_near[e_top].astype(np.int64)
        parts.append(_emit(1, batch.keys, e_seg[e_top], e_other[e_top],
                           e_cos[e_top].astype(np.float32), e_cos[e_top], e_near_s))
    # item co-occurrence kNN and sequential rules, over every partner
    knn = _knn(summed(batch.near_c), batch.keys[seg], other, lookups, params)
    rules = fwd[1] if params.rules_from_forward else summed(batch.rules)
    for code, value in ((2, knn), (3, rules)):
        # when the rules window is the forward window, its list heads the forward partners
        reuse = code == 3 and params.partners >= params.ref_k and params.rules_from_forward
        top = (_first_per_segment(seg, by_forward, params.ref_k, n) if reuse
               else strongest(value, params.ref_k))
        parts.append(_emit(code, batch.keys, seg[top], other[top],
                           value[top].astype(np.float32), np.full(len(top), np.nan),
                           near[top].astype(np.int64)))
    return {name: np.concatenate([p[name] for p in parts]) for name in out}


def _knn(near_c: np.ndarray, item: np.ndarray, other: np.ndarray, lookups: Lookups,
         params: Params) -> np.ndarray:
    """Item-kNN scores of (item, other) rows: co-occurrences discounted by both items'
    frequencies (alpha, lambda)."""
    freq = lookups.frequency.astype(np.float64)
    lam, alpha = params.cooc_lambda, params.cooc_alpha
    return near_c / ((freq[item] + lam) ** alpha * (freq[other] + lam) ** (1 - alpha))


def rows_that_matter(batch: Batch, lookups: Lookups, params: Params) -> np.ndarray:
    """Positions of the partner rows the lists of ``batch`` (rank_batch, any weights) read:
    each item's strongest ``partners`` by symmetric co-occurrence and by forward transitions,
    its strongest by every forward decay (the normalisers), the rows of its embedding
    neighbours (their features), and with ``params.references`` its item-kNN and
    sequential-rules top ``ref_k``. Ranking only these rows gives the same lists: an item's
    other partners are weaker than its ``partners``-th on both evidences, so they are no
    candidate, and no maximum or neighbour feature comes from them."""
    n = len(batch.keys)
    span = max(int(lookups.id_rank.shape[0]), 1)
    ids = lookups.id_rank[batch.other]

    def top(value: np.ndarray, limit: int) -> np.ndarray:
        return _top(batch.seg, value, ids, limit, n_seg=n, n_ids=span)

    fwd2_max = _segment_max(batch.fwd2, batch.seg, n)[batch.seg]
    parts = [top(batch.near, params.partners), top(batch.fwd1, params.partners),
             np.flatnonzero((batch.fwd2 == fwd2_max) & (batch.fwd2 > 0))]
    if params.references:
        knn = _knn(batch.near_c, batch.keys[batch.seg], batch.other, lookups, params)
        parts.append(top(knn, params.ref_k))
        if not (params.rules_from_forward and params.partners >= params.ref_k):
            parts.append(top(batch.rules, params.ref_k))  # else among the forward partners
    if batch.nbr_seg is not None:
        at, found = _lookup(batch.seg * span + batch.other,  # sorted: a row per partner
                            batch.nbr_seg * span + batch.nbr_other)
        parts.append(at[found])
    return _union_positions(parts, len(batch.seg))


def _normalised(values: np.ndarray, top: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """``values`` divided by their item's largest value (0 where that is 0)."""
    return np.divide(values, top[seg], out=np.zeros(len(values)), where=top[seg] > 0)


def _grid(batch: Batch, c_seg: np.ndarray, c_other: np.ndarray, sym_n: np.ndarray,
          fwd_n: dict[int, np.ndarray], c_cos: np.ndarray, rank_of: np.ndarray, span: np.int64,
          params: Params) -> dict[str, np.ndarray]:
    """Sums of hits, reciprocal ranks and NDCG gains at ``params.k`` of every weight mix in
    ``params.grid`` on the batch's validation pairs: the rank of the true next item is 1 + the
    candidates of its prev item that beat it (higher score, then higher cosine, then smaller
    id: rank_batch's order)."""
    assert batch.pair_seg is not None and batch.pair_next is not None
    order = np.lexsort((c_other, c_seg))
    c_seg, c_other, sym_n, c_cos = (x[order] for x in (c_seg, c_other, sym_n, c_cos))
    fwd_n = {d: values[order] for d, values in fwd_n.items()}
    n = len(batch.keys)
    counts = np.bincount(c_seg, minlength=n)
    starts = np.cumsum(counts) - counts
    code = c_seg * span + c_other
    want = batch.pair_seg * span + batch.pair_next
    at, found = _lookup(code, want)
    # every (pair, candidate of its prev item) combination, pair by pair
    sizes = counts[batch.pair_seg]
    pair_of = np.repeat(np.arange(len(want)), sizes)
    cand = np.repeat(starts[batch.pair_seg] - np.cumsum(sizes) + sizes, sizes) \
        + np.arange(int(sizes.sum()))
    tie = np.nan_to_num(c_cos, nan=_NO_COSINE)
    ids = rank_of[c_other]
    cos0 = np.nan_to_num(c_cos, nan=0.0)
    t = at[pair_of]
    # who wins a tie on score does not depend on the weights: higher cosine, then smaller id
    wins_tie = (tie[cand] > tie[t]) | ((tie[cand] == tie[t]) & (ids[cand] < ids[t]))
    # the features of each pair's candidates and of its true next item, gathered once
    near_c, cos_c, fwd_c = sym_n[cand], cos0[cand], {d: v[cand] for d, v in fwd_n.items()}
    near_t, cos_t, fwd_t = sym_n[at], cos0[at], {d: v[at] for d, v in fwd_n.items()}
    out = {f"{name}_{k}": np.zeros(len(params.grid)) for k in params.grid_ks
           for name in GRID_SUMS}
    for g, w in enumerate(params.grid):
        score_c = (w.cooccurrence * near_c + w.forward * fwd_c[w.decay]
                   + w.cosine * cos_c).astype(np.float32)
        score_t = (w.cooccurrence * near_t + w.forward * fwd_t[w.decay]
                   + w.cosine * cos_t).astype(np.float32)[pair_of]
        beat = (score_c > score_t) | ((score_c == score_t) & wins_tie)
        rank = np.bincount(pair_of, weights=beat, minlength=len(want)) + 1
        for k in params.grid_ks:
            hit = found & (rank <= k)
            out[f"hits_{k}"][g] = hit.sum()
            out[f"rr_{k}"][g] = (1.0 / rank)[hit].sum()
            out[f"gain_{k}"][g] = (1.0 / np.log2(rank + 1))[hit].sum()
    return {"g": np.arange(len(params.grid), dtype=np.int32), **out}


def _emit(code: int, keys: np.ndarray, seg: np.ndarray, other: np.ndarray, score: np.ndarray,
          cos: np.ndarray, near: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of one list model in the given order (by item, then rank: the rank is the
    position, see _lists_to_arrow)."""
    return {MODEL: np.full(len(seg), code, dtype=np.int8), ITEM: keys[seg].astype(np.int32),
            OTHER: other.astype(np.int32), SCORE: score.astype(np.float32),
            COSINE: cos.astype(np.float32), COOCCURRENCE: near}


def _lists_to_arrow(cols: dict[str, np.ndarray]) -> pa.RecordBatch:
    """rank_batch's rows (grouped by model and item, in rank order) -> LISTS_SCHEMA rows."""
    model, item = cols[MODEL], cols[ITEM]
    starts = np.flatnonzero(np.r_[True, (model[1:] != model[:-1]) | (item[1:] != item[:-1])]
                            if len(model) else np.zeros(0, bool))
    offsets = pa.array(np.r_[starts, len(model)].astype(np.int32))

    def lists(values: np.ndarray, kind: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(values, kind, mask=mask))

    cos = cols[COSINE]
    return pa.RecordBatch.from_arrays(
        [pa.array(model[starts], pa.int8()), pa.array(item[starts], pa.int32()),
         lists(cols[OTHER], pa.int32()), lists(cols[SCORE], pa.float32()),
         lists(cos, pa.float32(), mask=np.isnan(cos)), lists(cols[COOCCURRENCE], pa.int64())],
        names=[MODEL, ITEM, OTHER, SCORE, COSINE, COOCCURRENCE])


def flat_lists(lists: DataFrame) -> DataFrame:
    """rank_items' lists, a row per entry: (model, item_id, rank, other_id, score, cosine,
    cooccurrence)."""
    entry = F.posexplode(F.arrays_zip(OTHER, SCORE, COSINE, COOCCURRENCE)).alias("_pos", "_e")
    return lists.select(MODEL, ITEM, entry).select(
        MODEL, ITEM, (F.col("_pos") + 1).alias(RANK),
        *[F.col("_e")[name].alias(name) for name in (OTHER, SCORE, COSINE, COOCCURRENCE)])


# -- Spark -----------------------------------------------------------------------------------
class ChunkFinish:
    """What the evidence tasks do with each chunk while its sums are in memory (a co.Finish):
    search the embedding neighbours of its items once, for the validation and for the
    ranking; score every weight mix of ``params.grid`` on the validation ``pairs`` (prev item
    keys, next item keys) whose prev item is in the chunk, from the fit part's sums; and keep
    only what the ranking reads: the partner rows that can matter (rows_that_matter), without
    the fit part's sums, and the neighbours (NBR, NBR_COS). The grid's sums go beside the
    chunk (its ``side``), for ``grid_metrics``.

    Doing this in the evidence tasks spares a pass that would read and decompress every chunk
    again, a second search for the validation items, and most of the rows the ranking would
    read (on a 10M-event log five in six). With ``only`` (keys) only those items (and
    the validation's) are searched, and only their rows and neighbours kept: the ranking lists
    no other.
    """

    def __init__(self, sc: SparkContext, *, searcher: Searcher, lookups: Broadcast,
                 params: Params, pairs: tuple[np.ndarray, np.ndarray] | None = None,
                 only: np.ndarray | None = None) -> None:
        self.searcher, self.lookups, self.params = searcher, lookups, params
        self.pairs = None if pairs is None else sc.broadcast(
            tuple(np.asarray(p, dtype=np.int64) for p in pairs))
        self.only = None if only is None else sc.broadcast(
            np.unique(np.asarray(only, dtype=np.int64)))
        self._open: tuple | None = None  # (searcher, lookups, pairs, only), once per task

    def __call__(self, chunk: pa.RecordBatch) -> tuple[pa.RecordBatch, bytes | None]:
        if self._open is None:
            self._open = (self.searcher.open(), self.lookups.value,
                          None if self.pairs is None else self.pairs.value,
                          None if self.only is None else self.only.value)
        found, look, pairs, only = self._open
        keys = chunk.column(ITEM).to_numpy().astype(np.int64)
        listed = None if only is None else np.isin(keys, only)  # the items the ranking lists
        want = None
        if listed is not None:
            want = listed | (np.isin(keys, pairs[0]) if pairs is not None else False)
        seg, other, cos = search_neighbours(keys, found, look, want=want)
        side = None
        if pairs is not None:
            b = Batch.from_chunk(chunk, shipped(self.params, grid=True), fit=True)
            b.nbr_seg, b.nbr_other, b.nbr_cos = seg, other, cos
            b = b.with_pairs(*pairs)
            if len(b.keys):
                cols = rank_batch(b, found, look, self.params, output="grid")
                side = co.write_chunk(pa.RecordBatch.from_arrays(
                    [pa.array(v) for v in cols.values()], names=list(cols)))
        # only the partner rows the lists can read, without the fit part's sums
        names = [n for n in chunk.schema.names[2:] if not n.endswith(co.FIT)]
        full = Batch.from_chunk(chunk, FEATURES)
        full.nbr_seg, full.nbr_other, full.nbr_cos = seg, other, cos
        rows = rows_that_matter(full, look, self.params)
        if listed is not None:  # the ranking lists no other item: keep nothing of the rest
            rows = rows[listed[full.seg[rows]]]
            mine = listed[seg]
            seg, other, cos = seg[mine], other[mine], cos[mine]
        start = chunk.column(OTHER).offsets[0].as_py()
        take = pa.array(rows + start)

        def lists(values: pa.Array, seg_of: np.ndarray) -> pa.ListArray:
            offsets = np.r_[0, np.cumsum(np.bincount(seg_of, minlength=len(keys)))]
            return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)

        cols = [chunk.column(ITEM)]
        cols += [lists(chunk.column(name).values.take(take), full.seg[rows])
                 for name in (OTHER, *names)]
        cols += [lists(pa.array(other.astype(np.int32)), seg),
                 lists(pa.array(cos.astype(np.float32)), seg)]
        return pa.RecordBatch.from_arrays(cols, names=[ITEM, OTHER, *names, NBR, NBR_COS]), side

    def release(self) -> None:
        for bc in (self.pairs, self.only):
            if bc is not None:
                bc.unpersist()


def rank_items(evidence: DataFrame, *, searcher: Searcher | None, lookups: Broadcast,
               params: Params, only: np.ndarray | None = None) -> DataFrame:
    """Rank every item of the ``evidence`` (co.evidence chunks, by catalogue key: each item
    with its partners, and the items listed even without any); with ``only`` (keys) just those.
    ``rank_batch`` runs per chunk as it is stored: no partner row is grouped or converted on
    the way. ``lookups`` broadcasts a Lookups; the ``searcher`` gives the vectors (and the
    embedding neighbours of chunks that do not carry them, see ChunkFinish).
    """
    ship = shipped(params, grid=False)
    sc = evidence.sparkSession.sparkContext
    keep = None if only is None else sc.broadcast(np.unique(np.asarray(only, dtype=np.int64)))

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        found = searcher.open() if searcher is not None else None
        look = lookups.value
        for batch in batches:
            for data in batch.column("data"):
                b = Batch.from_chunk(co.read_chunk(data), ship)
                if keep is not None:
                    b = b.subset(np.isin(b.keys, keep.value))
                if len(b.keys):
                    yield _lists_to_arrow(rank_batch(b, found, look, params))

    return evidence.select("data").mapInArrow(task, LISTS_SCHEMA)


def grid_metrics(evidence: DataFrame, grid: Sequence[Weights], *, ks: Sequence[int],
                 pairs: int) -> list[dict[str, float]]:
    """HR, MRR and NDCG at each cut-off of every weight mix over all ``pairs`` validation
    pairs (a pair whose prev item has no evidence is a miss), from the sums ChunkFinish kept
    beside the evidence chunks (one batch per chunk, a row per mix)."""
    sums = {f"{name}_{k}": np.zeros(len(grid)) for k in ks for name in GRID_SUMS}
    sides = evidence.where(F.col("side").isNotNull()).select("side").toArrow().column(0)
    for side in sides:
        batch = co.read_chunk(side)
        g = batch.column("g").to_numpy()
        for name, total in sums.items():
            np.add.at(total, g, batch.column(name).to_numpy())
    n = float(pairs)
    names = (("hr", "hits"), ("mrr", "rr"), ("ndcg", "gain"))
    return [{"pairs": int(n), **{f"{name}@{k}": sums[f"{key}_{k}"][g] / n if n else 0.0
                                 for k in ks for name, key in names}}
            for g in range(len(grid))]


def model_name(code: Column) -> Column:
    """The list model's name from rank_batch's code."""
    return F.element_at(F.array(*[F.lit(m) for m in LIST_MODELS]), code.cast("int") + 1)


# -- choosing weights ------------------------------------------------------------------------
# The mixes tried per run (chosen on three real logs, see docs/ranking.md): the share of the
# forward evidence in the co-occurrence part, its decay with distance, and the cosine weight.
GRID_FORWARD = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
GRID_DECAY = (1, 2)
GRID_COSINE = (0.0, 0.02, 0.05, 0.1)


def weight_grid(default: Weights, *, mode: str = "hybrid") -> list[Weights]:
    """The weight mixes tried per run, the configured one first (it wins ties). In
    "cooccurrence" mode the cosine only breaks ties, so its weight stays 0."""
    cosines = (0.0,) if mode == "cooccurrence" else GRID_COSINE
    grid = [Weights(round(1.0 - f, 6), f, c, d) for f in GRID_FORWARD for d in GRID_DECAY
            for c in cosines]
    default = mode_weights(mode, default)
    return [default] + [w for w in grid if w != default]
