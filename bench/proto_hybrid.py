"""Research prototype: rank each item's similar items by co-occurrence evidence and embedding
cosine together, on real logs; documents what was tried and prints every result as a table.

    .venv/bin/python -m bench.proto_hybrid                       # all real logs, all studies
    .venv/bin/python -m bench.proto_hybrid --logs ml-100k --studies baselines norms

Protocol, baselines and metrics are bench/reference_eval.py's (all test pairs, a query item
without a list is a miss). Embeddings: Spark MLlib Word2Vec (skip-gram, hierarchical softmax),
vectorSize 64, windowSize 5, stepSize 0.1, minCount 5 (2 and 3 tried), numPartitions 1, seed
42, maxIter 15 (10 on logs over 500k training events), on the training sessions as sentences of
item-id strings, in a local[2] SparkSession this script starts; vectors are collected (small
logs) and cached under bench/.data/real/<log>/emb/.

The hybrid, written so that Spark can do it with joins and aggregations:
  candidates(i) = top-N items by cosine  U  top-M partners by symmetric co-occurrence
                  U  top-M partners by forward transitions                (M = 0: all partners)
  features of (i, j): sym = co-occurrences within ``sym_window`` positions, either order;
                      fwd = occurrences of j after i within ``fwd_window``, each 1 / distance;
                      cos = embedding cosine (0 when either item has no vector)
  score = w_sym * norm(sym) + w_fwd * norm(fwd) + w_cos * cos; ties: higher cosine, smaller id.
Per-run weight selection: the latest ``--val-fraction`` of training sessions (by start time) is
a validation slice; its consecutive pairs are scored against evidence counted on the earlier
training sessions (and, "clean", an embedding trained on those only), the grid point with the
best validation NDCG@20 is kept, and the test lists are then built from evidence over all
training sessions with those weights.

What the tables showed (ml-100k, ml-1m, instacart-sample; see the module's report):
  * normalisation: per-query max (or log then max) is the only one whose weights carry across
    logs; raw counts need log-specific cosine scales, cooc_knn's popularity discount (knn,
    knn+max) loses 0.01-0.03 HR@20 everywhere, rank fusion (rrf) is no better than max;
  * the sym/fwd mix is the log-dependent part: ratings want forward transitions (ml-1m: pure
    forward), grocery orders want symmetric co-occurrence (0.75/0.25); a 1/d^2 forward decay
    beats 1/d on ml-1m and ties elsewhere, so the decay is part of the per-run grid;
  * windows sym 5 / fwd 10 are at least as good as 3 / 5 on every log (once the decay can be
    sharpened); cosine weight 0-0.05 changes little (0.5+ hurts on purchases);
  * candidate sizes: N cosine neighbours and M partners per evidence of 20-200 give the same
    lists (M=50 keeps every partner that reaches a top-20); minCount 2-3 adds coverage only;
  * selection on the validation slice lands within 0.001 NDCG@20 of the test oracle; an
    embedding trained on all training sessions (leaky) overrates the cosine (picks 0.2-0.5)
    and costs up to 0.004 HR@20; with fewer than ~1,000 validation pairs selection is noisy.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bench import real_logs
from bench import reference_eval as ref

KS = ref.KS
K = max(KS)
COLUMNS = ("hr@10", "mrr@10", "hr@20", "mrr@20", "ndcg@20", "coverage@20")


# --- embeddings (Spark MLlib Word2Vec) -----------------------------------------------------

@dataclass
class Embedding:
    """Unit vectors of the items that got one; ``row[code]`` = row in ``unit`` or -1."""

    row: np.ndarray
    unit: np.ndarray

    @property
    def size(self) -> int:
        return len(self.unit)


_SPARK = None


def spark():
    global _SPARK
    if _SPARK is None:
        from pyspark.sql import SparkSession

        _SPARK = (SparkSession.builder.master("local[2]").appName("proto_hybrid")
                  .config("spark.ui.enabled", "false")
                  .config("spark.ui.showConsoleProgress", "false")
                  .config("spark.driver.memory", "6g")
                  .config("spark.sql.shuffle.partitions", "2")
                  .getOrCreate())
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


def train_embedding(sessions: list[np.ndarray], items: np.ndarray, *, min_count: int,
                    cache: Path, max_iter: int, seed: int = 42) -> Embedding:
    """MLlib Word2Vec on the sessions (sentences of item-id strings); cached as .npz."""
    if cache.exists():
        z = np.load(cache)
        return Embedding(z["row"], z["unit"])
    from pyspark.ml.feature import Word2Vec

    s = spark()
    df = s.createDataFrame([(items[x].tolist(),) for x in sessions], "items array<string>")
    model = Word2Vec(vectorSize=64, windowSize=5, stepSize=0.1, minCount=min_count,
                     numPartitions=1, seed=seed, maxIter=max_iter, maxSentenceLength=1000,
                     inputCol="items", outputCol="v").fit(df)
    rows = model.getVectors().collect()
    words = np.array([r["word"] for r in rows])
    vecs = np.array([r["vector"].toArray() for r in rows], dtype=np.float64)
    order = np.argsort(words)
    words, vecs = words[order], vecs[order]
    unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    row = np.full(len(items), -1, dtype=np.int64)
    row[np.searchsorted(items, words)] = np.arange(len(words))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, row=row, unit=unit)
    return Embedding(row, unit)


def cosine_top(emb: Embedding, queries: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """Each query's ``n`` nearest items by cosine (itself excluded, ties to smaller code)."""
    out: dict[int, np.ndarray] = {}
    if n == 0:
        return out
    code_of = np.full(emb.size, -1, dtype=np.int64)
    code_of[emb.row[emb.row >= 0]] = np.flatnonzero(emb.row >= 0)
    qs = queries[emb.row[queries] >= 0]
    for block in np.array_split(qs, max(1, len(qs) // 512)):
        sims = emb.unit[emb.row[block]] @ emb.unit.T
        sims[np.arange(len(block)), emb.row[block]] = -np.inf
        for q, srow in zip(block, sims, strict=True):
            top = np.argpartition(-srow, min(n, len(srow) - 1))[:n + 1]
            top = top[np.lexsort((code_of[top], -srow[top]))][:n]
            out[int(q)] = code_of[top[np.isfinite(srow[top])]]
    return out


def embedding_lists(emb: Embedding, queries: np.ndarray, n_items: int) -> np.ndarray:
    lists = np.full((n_items, K), -1, dtype=np.int64)
    for q, top in cosine_top(emb, queries, K).items():
        lists[q, :len(top)] = top
    return lists


# --- candidates and their features ---------------------------------------------------------

@dataclass
class Evidence:
    """Co-occurrence evidence from a set of sessions, derived from forward counts per distance
    (as the job keeps them): sym[w] = pairs at most w apart in either order (counts);
    fwd[w] = sum_d c_d / d and fwd2[w] = sum_d c_d / d^2 over j after i at distance d <= w."""

    counts: np.ndarray
    sym: dict[int, sp.csr_matrix] = field(default_factory=dict)
    fwd: dict[int, sp.csr_matrix] = field(default_factory=dict)
    fwd2: dict[int, sp.csr_matrix] = field(default_factory=dict)

    @staticmethod
    def of(sessions: list[np.ndarray], n_items: int, windows: Iterable[int]) -> Evidence:
        ev = Evidence(ref.item_counts(sessions, n_items))
        windows = sorted(set(windows))
        flat, sid = ref._flat(sessions)
        zero = sp.csr_matrix((n_items, n_items))
        sym, fwd, fwd2 = zero, zero, zero
        for d in range(1, windows[-1] + 1):
            a, b = flat[:-d], flat[d:]
            ok = (sid[:-d] == sid[d:]) & (a != b)
            c = sp.coo_matrix((np.ones(int(ok.sum())), (a[ok], b[ok])),
                              shape=(n_items, n_items)).tocsr()
            c.sum_duplicates()
            sym, fwd, fwd2 = sym + c + c.T, fwd + c / float(d), fwd2 + c / float(d * d)
            if d in windows:
                ev.sym[d], ev.fwd[d], ev.fwd2[d] = sym.tocsr(), fwd.tocsr(), fwd2.tocsr()
        return ev


@dataclass
class Candidates:
    """One row per (query, candidate), grouped by query (``start``/``size`` per row's group)."""

    q: np.ndarray
    c: np.ndarray
    sym: np.ndarray
    fwd: np.ndarray
    fwd2: np.ndarray
    cos: np.ndarray  # 0 where either item has no vector
    has_cos: np.ndarray
    n_q: np.ndarray
    n_c: np.ndarray
    start: np.ndarray  # index of the first row of this row's group

    def group_reduce(self, x: np.ndarray, ufunc: np.ufunc = np.maximum) -> np.ndarray:
        """Per-row value of ``ufunc.reduce`` over the row's group."""
        firsts = np.flatnonzero(np.r_[True, self.q[1:] != self.q[:-1]])
        red = ufunc.reduceat(x, firsts)
        return red[np.searchsorted(firsts, self.start)]


def _top_partners(m: sp.csr_matrix, q: int, limit: int) -> np.ndarray:
    a, b = m.indptr[q], m.indptr[q + 1]
    cols, vals = m.indices[a:b], m.data[a:b]
    if limit and len(cols) > limit:
        cols = cols[np.lexsort((cols, -vals))[:limit]]
    return cols


def _lookup(m: sp.csr_matrix, q: int, cols: np.ndarray) -> np.ndarray:
    """m[q, cols] for a row with sorted indices."""
    a, b = m.indptr[q], m.indptr[q + 1]
    if a == b:
        return np.zeros(len(cols))
    idx, vals = m.indices[a:b], m.data[a:b]
    pos = np.minimum(np.searchsorted(idx, cols), len(idx) - 1)
    return np.where(idx[pos] == cols, vals[pos], 0.0)


def build_candidates(ev: Evidence, emb: Embedding | None, queries: np.ndarray, *,
                     sym_window: int, fwd_window: int, n_cos: int, m_partners: int,
                     cand_window: int | None = None) -> Candidates:
    """Candidates of each query with raw features. Partners are chosen by the raw evidence of
    ``cand_window`` (default: the feature windows)."""
    S, F, F2 = ev.sym[sym_window], ev.fwd[fwd_window], ev.fwd2[fwd_window]
    Sc = ev.sym[cand_window] if cand_window else S
    Fc = ev.fwd[cand_window] if cand_window else F
    for m in (S, F, F2, Sc, Fc):
        m.sort_indices()
    cos_top = cosine_top(emb, queries, n_cos) if emb is not None else {}
    parts = {k: [] for k in ("q", "c", "sym", "fwd", "fwd2")}
    for q in np.sort(queries):
        q = int(q)
        cands = np.union1d(np.union1d(_top_partners(Sc, q, m_partners),
                                      _top_partners(Fc, q, m_partners)),
                           cos_top.get(q, np.zeros(0, np.int64)))
        cands = cands[cands != q]
        if not len(cands):
            continue
        parts["q"].append(np.full(len(cands), q))
        parts["c"].append(cands)
        parts["sym"].append(_lookup(S, q, cands))
        parts["fwd"].append(_lookup(F, q, cands))
        parts["fwd2"].append(_lookup(F2, q, cands))
    q, c, sym, fwd, fwd2 = (np.concatenate(parts[k]) if parts[k] else np.zeros(0)
                            for k in ("q", "c", "sym", "fwd", "fwd2"))
    q, c = q.astype(np.int64), c.astype(np.int64)
    if emb is not None and len(q):
        rq, rc = emb.row[q], emb.row[c]
        has = (rq >= 0) & (rc >= 0)
        cos = np.zeros(len(q))
        cos[has] = np.einsum("ij,ij->i", emb.unit[rq[has]], emb.unit[rc[has]])
    else:
        has, cos = np.zeros(len(q), bool), np.zeros(len(q))
    firsts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]]) if len(q) else np.zeros(0, int)
    start = np.repeat(firsts, np.diff(np.r_[firsts, len(q)]))
    return Candidates(q, c, sym, fwd, fwd2, cos, has, ev.counts[q].astype(float),
                      ev.counts[c].astype(float), start)


# --- normalisations and scoring ------------------------------------------------------------

ALPHA, LAMBDA, RRF_K = 0.5, 20.0, 60.0


def _per_query_max(cands: Candidates, x: np.ndarray) -> np.ndarray:
    top = cands.group_reduce(x)
    return np.where(top > 0, x / np.where(top > 0, top, 1.0), 0.0)


def _knn(cands: Candidates, x: np.ndarray) -> np.ndarray:
    return x / (np.power(cands.n_q + LAMBDA, ALPHA) * np.power(cands.n_c + LAMBDA, 1 - ALPHA))


def _rank_in_group(cands: Candidates, x: np.ndarray) -> np.ndarray:
    """1-based rank of each row's value in its group (desc, ties to smaller code); inf if 0."""
    order = np.lexsort((cands.c, -x, cands.q))
    rank = np.empty(len(x))
    rank[order] = np.arange(len(x)) - cands.start[order] + 1
    return np.where(x > 0, rank, np.inf)


NORMS: dict[str, Callable[[Candidates, np.ndarray], np.ndarray]] = {
    "raw": lambda c, x: x,
    "knn": _knn,
    "max": _per_query_max,
    "knn+max": lambda c, x: _per_query_max(c, _knn(c, x)),
    "log+max": lambda c, x: _per_query_max(c, np.log1p(x)),
    "sqrt+max": lambda c, x: _per_query_max(c, np.sqrt(x)),
    "rrf": lambda c, x: 1.0 / (RRF_K + _rank_in_group(c, x)),
}


@dataclass(frozen=True)
class Recipe:
    """How candidates are scored: normalisation, weights (sym, fwd, cos), and the distance
    decay of the forward evidence (1: 1/d, 2: 1/d^2)."""

    norm: str = "max"
    w_sym: float = 1.0
    w_fwd: float = 1.0
    w_cos: float = 0.05
    decay: int = 1

    def label(self) -> str:
        decay = "" if self.decay == 1 else f" fwd 1/d^{self.decay}"
        return f"{self.norm} w=({self.w_sym:g},{self.w_fwd:g},{self.w_cos:g}){decay}"


class Scorer:
    """Caches the normalised features of one candidate table."""

    def __init__(self, cands: Candidates):
        self.c = cands
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def feature(self, name: str, norm: str) -> np.ndarray:
        key = (name, norm)
        if key not in self._cache:
            x = getattr(self.c, name)
            if name == "cos":
                self._cache[key] = (1.0 / (RRF_K + _rank_in_group(self.c, np.where(
                    self.c.has_cos, x + 2.0, 0.0))) if norm == "rrf" else x)
            else:
                self._cache[key] = NORMS[norm](self.c, x)
        return self._cache[key]

    def score(self, r: Recipe) -> np.ndarray:
        s = np.zeros(len(self.c.q))
        fwd = "fwd" if r.decay == 1 else "fwd2"
        for name, w in (("sym", r.w_sym), (fwd, r.w_fwd), ("cos", r.w_cos)):
            if w:
                s = s + w * self.feature(name, r.norm)
        return s

    def lists(self, r: Recipe, n_items: int) -> np.ndarray:
        c = self.c
        s = self.score(r)
        tie = np.where(c.has_cos, c.cos, -2.0)
        order = np.lexsort((c.c, -tie, -s, c.q))
        pos = np.arange(len(order)) - c.start[order]
        top = pos < K
        lists = np.full((n_items, K), -1, dtype=np.int64)
        lists[c.q[order[top]], pos[top]] = c.c[order[top]]
        return lists


# --- one log's experiment state ------------------------------------------------------------

@dataclass
class Log:
    name: str
    split: ref.Split
    n_train_items: int
    fit: list[np.ndarray]  # training sessions before the validation slice
    val: list[np.ndarray]  # the validation slice (latest training sessions)
    val_pairs: np.ndarray
    max_iter: int
    val_fraction: float
    _ev: dict = field(default_factory=dict)
    _emb: dict = field(default_factory=dict)
    _cands: dict = field(default_factory=dict)

    @staticmethod
    def load(name: str, *, val_fraction: float) -> Log:
        split = ref.load_split(real_logs.events_path(name))
        n_fit = round(len(split.train) * (1 - val_fraction))
        fit, val = split.train[:n_fit], split.train[n_fit:]
        counts = ref.item_counts(split.train, split.n_items)
        tokens = int(counts.sum())
        return Log(name, split, int((counts > 0).sum()), fit, val,
                   ref.consecutive_pairs(val), 10 if tokens > 500_000 else 15, val_fraction)

    def evidence(self, part: str) -> Evidence:
        if part not in self._ev:
            sessions = self.split.train if part == "train" else self.fit
            self._ev[part] = Evidence.of(sessions, self.split.n_items, (1, 2, 3, 5, 10))
        return self._ev[part]

    def embedding(self, part: str, min_count: int = 5) -> Embedding:
        key = (part, min_count)
        if key not in self._emb:
            sessions = self.split.train if part == "train" else self.fit
            tag = part if part == "train" else f"{part}{self.val_fraction:g}"
            cache = (real_logs.DATA / self.name / "emb" /
                     f"{tag}-mc{min_count}-it{self.max_iter}.npz")
            t0 = time.time()
            self._emb[key] = train_embedding(sessions, self.split.items, min_count=min_count,
                                             cache=cache, max_iter=self.max_iter)
            if time.time() - t0 > 1:
                print(f"  [{self.name}: Word2Vec on {part} sessions, minCount {min_count}: "
                      f"{self._emb[key].size} vectors, {time.time() - t0:.0f}s]",
                      file=sys.stderr, flush=True)
        return self._emb[key]

    def scorer(self, *, target: str = "test", emb_part: str = "train", min_count: int = 5,
               sym_window: int = 3, fwd_window: int = 5, n_cos: int = 50,
               m_partners: int = 50, cand_window: int | None = None) -> Scorer:
        """Candidates for the test pairs (evidence: all training sessions) or the validation
        pairs (evidence: the fit part; embedding of ``emb_part``)."""
        key = (target, emb_part, min_count, sym_window, fwd_window, n_cos, m_partners,
               cand_window)
        if key not in self._cands:
            pairs = self.pairs(target)
            ev = self.evidence("train" if target == "test" else "fit")
            emb = self.embedding(emb_part, min_count) if n_cos >= 0 else None
            cands = build_candidates(ev, emb, np.unique(pairs[:, 0]), sym_window=sym_window,
                                     fwd_window=fwd_window, n_cos=max(n_cos, 0),
                                     m_partners=m_partners, cand_window=cand_window)
            self._cands[key] = Scorer(cands)
        return self._cands[key]

    def pairs(self, target: str) -> np.ndarray:
        return self.split.pairs if target == "test" else self.val_pairs

    def n_items_known(self, target: str) -> int:
        if target == "test":
            return self.n_train_items
        return int((self.evidence("fit").counts > 0).sum())

    def metrics(self, scorer: Scorer, recipe: Recipe, target: str = "test",
                pairs: np.ndarray | None = None) -> dict[str, float]:
        lists = scorer.lists(recipe, self.split.n_items)
        return ref.metrics(lists, self.pairs(target) if pairs is None else pairs,
                           self.n_items_known(target))


# --- weight grids and selection ------------------------------------------------------------

SYM_WINDOW, FWD_WINDOW = 5, 10  # evidence windows of the selection studies (--windows)
DECAYS = (1, 2)  # forward decays the per-run grid chooses from (--decays)

FWD_SHARES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
COS_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # for the test-oracle comparisons
# The per-run grid: 7 shares x 2 decays x 4 cosine weights = 56 points. Larger cosine weights
# were chosen on validation more often than they helped on test.
SELECT_COS = (0.0, 0.02, 0.05, 0.1)
FALLBACK = Recipe("max", 0.5, 0.5, 0.02)  # fixed weights when the validation slice is small


def grid(norm: str = "max", shares: Iterable[float] = FWD_SHARES,
         cos_weights: Iterable[float] = COS_WEIGHTS, decays: Iterable[int] = (1,)
         ) -> list[Recipe]:
    """w_sym + w_fwd = 1 (scores are scale-free), cosine weight on top, forward decays."""
    return [Recipe(norm, round(1 - s, 2), s, wc, d)
            for d, s, wc in itertools.product(decays, shares, cos_weights)]


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR/MRR/NDCG@10,20 from 1-based ranks (0 = miss)."""
    return ref.rank_metrics(ranks, KS)


def val_ranks(log: Log, scorer: Scorer, recipes: list[Recipe]) -> dict[Recipe, np.ndarray]:
    """Rank of each validation pair's next item under each recipe (computed once)."""
    return {r: ref.ranks_of(scorer.lists(r, log.split.n_items), log.val_pairs)
            for r in recipes}


def select(ranks: dict[Recipe, np.ndarray], objective: str,
           subset: np.ndarray | None = None) -> Recipe:
    """The recipe with the best validation objective (first in grid order on ties)."""
    best, best_v = None, -1.0
    for r, rk in ranks.items():
        v = objective_value(rank_metrics(rk if subset is None else rk[subset]), objective)
        if v > best_v + 1e-12:
            best, best_v = r, v
    return best


def objective_value(m: dict[str, float], objective: str) -> float:
    return sum(m[k] for k in objective.split("+"))


# --- printing ------------------------------------------------------------------------------

def print_table(title: str, rows: list[tuple[str, dict[str, float]]],
                columns: tuple[str, ...] = COLUMNS) -> None:
    print(f"\n### {title}")
    width = max(len(name) for name, _ in rows) + 2
    print("| " + "variant".ljust(width) + " | " + " | ".join(c.rjust(11) for c in columns)
          + " |")
    print("|" + "-" * (width + 2) + "|" + "|".join("-" * 12 + ":" for _ in columns) + "|")
    for name, m in rows:
        print("| " + name.ljust(width) + " | " + " | ".join(
            f"{m[c]:11.4f}" if c in m else " " * 11 for c in columns) + " |")
    sys.stdout.flush()


# --- studies -------------------------------------------------------------------------------

def baseline_rows(log: Log) -> list[tuple[str, dict[str, float]]]:
    """Popularity, cooc_knn (window 3), sequential rules (windows 1-10), embedding alone."""
    rows = list(ref.baselines(log.split).items())
    queries = np.unique(log.split.pairs[:, 0])
    for mc in (5, 3, 2):
        emb = log.embedding("train", mc)
        rows.append((f"embedding alone (minCount {mc}, {emb.size} vectors)",
                     ref.metrics(embedding_lists(emb, queries, log.split.n_items),
                                 log.split.pairs, log.n_train_items)))
    return rows


def best_baselines(log: Log) -> dict[str, float]:
    """The best of cooc_knn (window 3) and sequential rules (any tried window), per metric."""
    rows = ref.baselines(log.split)
    rows.pop("popularity")
    return {k: max(m[k] for m in rows.values()) for k in next(iter(rows.values()))}


def study_baselines(log: Log) -> None:
    print_table(f"{log.name}: baselines and the embedding alone", baseline_rows(log))


def study_norms(log: Log) -> None:
    """Each normalisation: a fixed mix, and its test-oracle best over its own weight grid."""
    sc = log.scorer()
    rows = []
    for norm in NORMS:
        cos_weights = COS_WEIGHTS if norm not in ("raw",) else (0.0, 0.1, 1.0, 10.0)
        if norm == "knn":
            cos_weights = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)
        if norm == "rrf":
            cos_weights = (0.0, 0.1, 0.25, 0.5, 1.0)
        g = grid(norm, cos_weights=cos_weights)
        scored = [(r, log.metrics(sc, r)) for r in g]
        r, m = max(scored, key=lambda t: t[1]["ndcg@20"])
        rows.append((f"{norm}: test oracle {r.label()}", m))
        fixed = Recipe(norm, 0.5, 0.5, {"raw": 0.1, "knn": 0.003, "rrf": 0.25}.get(norm, 0.05))
        rows.append((f"{norm}: fixed {fixed.label()}", log.metrics(sc, fixed)))
    print_table(f"{log.name}: evidence normalisations (sym window 3, fwd window 5, N=M=50)",
                rows)


def study_windows(log: Log, norm: str = "max") -> None:
    rows = []
    for sw, fw in [(1, 1), (1, 3), (2, 5), (3, 3), (3, 5), (3, 10), (5, 5), (5, 10), (10, 10)]:
        sc = log.scorer(sym_window=sw, fwd_window=fw)
        for r in (Recipe(norm, 0.5, 0.5, 0.05), Recipe(norm, 0.25, 0.75, 0.05)):
            rows.append((f"sym {sw} / fwd {fw}: {r.label()}", log.metrics(sc, r)))
        best = max(((r, log.metrics(sc, r)) for r in grid(norm)),
                   key=lambda t: t[1]["ndcg@20"])
        rows.append((f"sym {sw} / fwd {fw}: oracle {best[0].label()}", best[1]))
    print_table(f"{log.name}: evidence windows ({norm} normalisation, N=M=50)", rows)


def study_decay(log: Log) -> None:
    """Forward evidence 1/d vs 1/d^2: alone (sequential rules with that decay) and in the
    hybrid (test oracle over the weight grid), for two window settings."""
    rows = []
    for sw, fw in ((3, 5), (5, 10)):
        sc = log.scorer(sym_window=sw, fwd_window=fw)
        for decay in (1, 2):
            alone = Recipe("max", 0.0, 1.0, 0.0, decay)
            rows.append((f"fwd {fw} alone: {alone.label()}", log.metrics(sc, alone)))
            scored = {r: log.metrics(sc, r) for r in grid(decays=(decay,))}
            best = max(scored, key=lambda r: scored[r]["ndcg@20"])
            rows.append((f"sym {sw} / fwd {fw}: oracle {best.label()}", scored[best]))
    print_table(f"{log.name}: forward-evidence decay (max normalisation, N=M=50)", rows)


def study_cosine(log: Log, norm: str = "max") -> None:
    sc = log.scorer()
    rows = []
    for share in (0.25, 0.5, 0.75):
        for wc in (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0):
            r = Recipe(norm, 1 - share, share, wc)
            rows.append((r.label(), log.metrics(sc, r)))
    print_table(f"{log.name}: cosine weight ({norm}, sym 3 / fwd 5, N=M=50)", rows)


def study_candidates(log: Log, norm: str = "max") -> None:
    rows = []
    for n_cos, m in [(0, 0), (0, 50), (20, 20), (50, 20), (50, 50), (100, 50), (50, 100),
                     (100, 100), (50, 0), (200, 0)]:
        sc = log.scorer(n_cos=n_cos, m_partners=m)
        for r in (Recipe(norm, 0.5, 0.5, 0.05), Recipe(norm, 0.25, 0.75, 0.05)):
            rows.append((f"N={n_cos} M={m or 'all'}: {r.label()}", log.metrics(sc, r)))
    print_table(f"{log.name}: candidate sizes (N cosine neighbours, M partners per evidence;"
                f" {norm}, sym 3 / fwd 5)", rows)


def study_min_count(log: Log, norm: str = "max") -> None:
    rows = []
    for mc in (5, 3, 2):
        sc = log.scorer(min_count=mc)
        for r in (Recipe(norm, 0.5, 0.5, 0.05), Recipe(norm, 0.25, 0.75, 0.05),
                  Recipe(norm, 0.5, 0.5, 0.1)):
            rows.append((f"minCount {mc}: {r.label()}", log.metrics(sc, r)))
    print_table(f"{log.name}: embedding minCount inside the hybrid ({norm})", rows)


def study_selection(log: Log, norm: str = "max", objectives: tuple[str, ...] = (
        "ndcg@20", "hr@20+mrr@20", "hr@10+mrr@10")) -> None:
    """Per-run selection on the validation slice vs fixed weights vs the test oracle; leaky
    (embedding of all training sessions) vs clean (embedding of the fit part only)."""
    g = grid(norm, cos_weights=SELECT_COS, decays=DECAYS)
    w = {"sym_window": SYM_WINDOW, "fwd_window": FWD_WINDOW}
    test_sc = log.scorer(**w)
    test = {r: log.metrics(test_sc, r) for r in g}
    rows = []
    oracle = max(g, key=lambda r: test[r]["ndcg@20"])
    rows.append((f"test oracle (ndcg@20) {oracle.label()}", test[oracle]))
    for fixed in (Recipe(norm, 0.5, 0.5, 0.05), Recipe(norm, 0.5, 0.5, 0.02),
                  Recipe(norm, 0.25, 0.75, 0.05), Recipe(norm, 0.75, 0.25, 0.05)):
        rows.append((f"fixed {fixed.label()}", log.metrics(test_sc, fixed)))
    print(f"\n{log.name}: validation slice = latest {len(log.val):,} training sessions, "
          f"{len(log.val_pairs):,} pairs; evidence from the {len(log.fit):,} earlier sessions")
    for emb_part in ("train", "fit"):
        ranks = val_ranks(log, log.scorer(target="val", emb_part=emb_part, **w), g)
        for obj in objectives:
            r = select(ranks, obj)
            tag = "leaky emb" if emb_part == "train" else "clean emb"
            rows.append((f"selected on val ({tag}, max {obj}) {r.label()}", test[r]))
            rows.append(("  (its validation metrics)", rank_metrics(ranks[r])))
    print_table(f"{log.name}: per-run weight selection ({norm}, sym {SYM_WINDOW} / fwd "
                f"{FWD_WINDOW}, N=M=50)", rows)


def study_stability(log: Log, norm: str = "max", objective: str = "ndcg@20",
                    sizes: tuple[int, ...] = (250, 500, 1000, 2000, 5000, 10000, 20000),
                    repeats: int = 50) -> None:
    """How far from the test oracle selection lands when the validation slice has only a few
    pairs (random subsets of the validation pairs, ``repeats`` each; clean embedding)."""
    g = grid(norm, cos_weights=SELECT_COS, decays=DECAYS)
    w = {"sym_window": SYM_WINDOW, "fwd_window": FWD_WINDOW}
    test_sc = log.scorer(**w)
    test = {r: log.metrics(test_sc, r)["ndcg@20"] for r in g}
    ranks = val_ranks(log, log.scorer(target="val", emb_part="fit", **w), g)
    oracle, fixed = max(test.values()), test[FALLBACK]
    rng = np.random.default_rng(0)
    print(f"\n### {log.name}: selection stability ({norm}, objective {objective}, sym "
          f"{SYM_WINDOW} / fwd {FWD_WINDOW}); test ndcg@20: oracle {oracle:.4f}, "
          f"fallback {FALLBACK.label()} {fixed:.4f}")
    print("| validation pairs | mean test ndcg@20 | worst | mean regret vs oracle | "
          "share worse than fallback | distinct choices |")
    print("|---:|---:|---:|---:|---:|---:|")
    n_val = len(log.val_pairs)
    for n in [*(x for x in sizes if x < n_val), n_val]:
        reps = 1 if n == n_val else repeats
        picks = [select(ranks, objective, rng.choice(n_val, n, replace=False))
                 for _ in range(reps)]
        got = np.array([test[r] for r in picks])
        print(f"| {n:,} | {got.mean():.4f} | {got.min():.4f} | {oracle - got.mean():.4f} | "
              f"{(got < fixed - 1e-9).mean():.2f} | {len(set(picks))} |")
    sys.stdout.flush()


MIN_VAL_PAIRS = 1000  # below this many validation pairs the fixed FALLBACK weights are used


def per_run_recipe(log: Log, *, emb_part: str, objective: str = "ndcg@20",
                   norm: str = "max") -> tuple[Recipe, bool]:
    """The weights a run would choose: grid search on the validation slice, or FALLBACK when
    the slice has fewer than MIN_VAL_PAIRS pairs. Returns (recipe, fell back)."""
    if len(log.val_pairs) < MIN_VAL_PAIRS:
        return FALLBACK, True
    w = {"sym_window": SYM_WINDOW, "fwd_window": FWD_WINDOW}
    ranks = val_ranks(log, log.scorer(target="val", emb_part=emb_part, **w),
                      grid(norm, cos_weights=SELECT_COS, decays=DECAYS))
    return select(ranks, objective), False


def study_final(log: Log) -> None:
    """The summary table: baselines, the embedding alone, the hybrid with fixed weights, with
    per-run selected weights (clean and leaky embedding), and the test oracle of the grid."""
    base = ref.baselines(log.split)
    rules = {k: m for k, m in base.items() if k.startswith("sequential_rules")}
    best_rules = max(rules, key=lambda k: rules[k]["ndcg@20"])
    rows = [(k, base[k]) for k in ("popularity", "cooc_knn (window 3)",
                                   "sequential_rules (window 3)")]
    if best_rules != "sequential_rules (window 3)":
        rows.append((best_rules + " (best window)", rules[best_rules]))
    queries = np.unique(log.split.pairs[:, 0])
    emb = log.embedding("train", 5)
    rows.append(("embedding alone (minCount 5)", ref.metrics(
        embedding_lists(emb, queries, log.split.n_items), log.split.pairs, log.n_train_items)))
    sc = log.scorer(sym_window=SYM_WINDOW, fwd_window=FWD_WINDOW)
    tag = f"hybrid sym {SYM_WINDOW}/fwd {FWD_WINDOW}"
    rows.append((f"{tag}, fixed {FALLBACK.label()}", log.metrics(sc, FALLBACK)))
    for emb_part, name in (("fit", "clean"), ("train", "leaky")):
        r, fell_back = per_run_recipe(log, emb_part=emb_part)
        note = "fallback" if fell_back else f"selected, {name} emb"
        rows.append((f"{tag}, per run ({note}) {r.label()}", log.metrics(sc, r)))
    test = {r: log.metrics(sc, r) for r in grid(cos_weights=SELECT_COS, decays=DECAYS)}
    oracle = max(test, key=lambda r: test[r]["ndcg@20"])
    rows.append((f"{tag}, test oracle {oracle.label()}", test[oracle]))
    print_table(f"{log.name}: summary ({len(log.split.pairs):,} test pairs; validation "
                f"{len(log.val_pairs):,} pairs)", rows)


STUDIES = {"baselines": study_baselines, "norms": study_norms, "windows": study_windows,
           "decay": study_decay,
           "cosine": study_cosine, "candidates": study_candidates,
           "min_count": study_min_count, "selection": study_selection,
           "stability": study_stability, "final": study_final}


def main(argv: list[str] | None = None) -> int:
    global SYM_WINDOW, FWD_WINDOW, DECAYS
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logs", nargs="+", default=list(real_logs.SOURCES))
    p.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--windows", type=int, nargs=2, metavar=("SYM", "FWD"),
                   default=[SYM_WINDOW, FWD_WINDOW],
                   help="evidence windows of the selection, stability and final studies")
    p.add_argument("--decays", type=int, nargs="+", default=list(DECAYS), choices=[1, 2],
                   help="forward-evidence decays (1/d, 1/d^2) the per-run grid chooses from")
    args = p.parse_args(argv)
    SYM_WINDOW, FWD_WINDOW = args.windows
    DECAYS = tuple(args.decays)
    for name in args.logs:
        log = Log.load(name, val_fraction=args.val_fraction)
        print(f"\n## {name}: {ref.describe(log.split)}")
        for study in args.studies:
            t0 = time.time()
            STUDIES[study](log)
            print(f"[{study}: {time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
    if _SPARK is not None:
        _SPARK.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
