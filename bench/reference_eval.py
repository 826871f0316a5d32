"""Reference (numpy/pandas) next-item evaluation, to cross-check the Spark job's numbers.

    .venv/bin/python -m bench.reference_eval ml-100k            # baselines on one real log
    .venv/bin/python -m bench.reference_eval ml-100k --rules-windows 1 2 3 5 10

Protocol (the job's sessions and holdout, written out plainly):
  * events per user ordered by (timestamp, item_id); a new session starts after a gap of more
    than 30 minutes; an event repeating the previous item of the same session is dropped;
    sessions with fewer than 2 items are dropped (no maximum length);
  * sessions ordered by start time (ties: user id): the first 80 % train, the rest are the test
    sessions, and every consecutive (prev, next) pair of a test session is a test pair;
  * HR@k, MRR@k, NDCG@k over ALL test pairs (a prev item without a list is a miss; the list of
    an item never contains the item itself), k in 10 and 20;
  * coverage@k: distinct items in the top-k lists of the test pairs' prev items / distinct
    training items.

Baselines, from the training sessions only:
  * popularity: the most frequent training items;
  * cooc_knn: co(i, j) = times i and j occur at most ``window`` (3) positions apart in a session,
    either order; score co / ((n_i + lambda)^alpha (n_j + lambda)^(1 - alpha)), alpha 0.5,
    lambda 20, n = occurrences in the training sessions (item/evaluate.py cooccurrence_recs);
  * sequential_rules: j after i at distance d <= ``window`` in a session adds 1 / d.
Ties go to the smaller item id (string order) everywhere.

Items are coded 0..V-1 in string order of their ids, so "smaller code" = "smaller id".
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.sparse as sp

KS = (10, 20)


@dataclass
class Split:
    """A log split by the protocol: item codes, training and test sessions, test pairs."""

    items: np.ndarray  # code -> item id (sorted strings)
    train: list[np.ndarray]  # training sessions (arrays of item codes), by start time
    train_start: np.ndarray  # start time (int64 us) of each training session
    test: list[np.ndarray]
    pairs: np.ndarray  # (n, 2) int: prev code, next code

    @property
    def n_items(self) -> int:
        return len(self.items)


def load_events(path: str | Path) -> pd.DataFrame:
    return pq.read_table(path, columns=["user_id", "item_id", "timestamp"]).to_pandas()


def sessionize(events: pd.DataFrame, *, gap_minutes: float = 30.0) -> pd.DataFrame:
    """(user_id, start, items) per session, items as arrays of item codes; column ``items``
    holds codes into ``sorted(unique item ids)`` (returned in ``df.attrs['items']``)."""
    ids = np.sort(events["item_id"].astype(str).unique())
    ev = pd.DataFrame({"user": events["user_id"].astype(str).to_numpy(),
                       "t": events["timestamp"].dt.tz_convert(None).to_numpy()
                       .astype("datetime64[us]").astype("int64"),
                       "item": np.searchsorted(ids, events["item_id"].astype(str).to_numpy())})
    # (time, item id) order; item codes follow string order of the ids.
    ev = ev.sort_values(["user", "t", "item"], kind="mergesort").reset_index(drop=True)
    user, t, item = ev["user"].to_numpy(), ev["t"].to_numpy(), ev["item"].to_numpy()
    new = np.ones(len(ev), dtype=bool)
    new[1:] = (user[1:] != user[:-1]) | (t[1:] - t[:-1] > int(gap_minutes * 60e6))
    repeat = np.zeros(len(ev), dtype=bool)
    repeat[1:] = ~new[1:] & (item[1:] == item[:-1])
    sid = np.cumsum(new)[~repeat]
    user, t, item = user[~repeat], t[~repeat], item[~repeat]
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    starts, ends = bounds[:-1], bounds[1:]
    keep = ends - starts >= 2
    out = pd.DataFrame({"user_id": user[starts[keep]], "start": t[starts[keep]],
                        "items": [item[a:b] for a, b in zip(starts[keep], ends[keep],
                                                             strict=True)]})
    out.attrs["items"] = ids
    return out


def consecutive_pairs(sessions: list[np.ndarray]) -> np.ndarray:
    if not sessions:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate([np.stack([s[:-1], s[1:]], axis=1) for s in sessions])


def split_sessions(sessions: pd.DataFrame, *, test_fraction: float = 0.2) -> Split:
    ordered = sessions.sort_values(["start", "user_id"], kind="mergesort")
    n_train = round(len(ordered) * (1.0 - test_fraction))
    train, test = ordered.iloc[:n_train], ordered.iloc[n_train:]
    return Split(items=sessions.attrs["items"], train=list(train["items"]),
                 train_start=train["start"].to_numpy(), test=list(test["items"]),
                 pairs=consecutive_pairs(list(test["items"])))


def load_split(path: str | Path, *, test_fraction: float = 0.2) -> Split:
    return split_sessions(sessionize(load_events(path)), test_fraction=test_fraction)


# --- evidence from training sessions -------------------------------------------------------

def item_counts(sessions: list[np.ndarray], n_items: int) -> np.ndarray:
    """Occurrences of each item in the sessions."""
    if not sessions:
        return np.zeros(n_items, dtype=np.int64)
    return np.bincount(np.concatenate(sessions), minlength=n_items)


def _flat(sessions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All items end to end, and the session number of each position."""
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    return np.concatenate(sessions), np.repeat(np.arange(len(sessions)), lengths)


def pair_matrix(sessions: list[np.ndarray], n_items: int, *, window: int, forward: bool,
                weight: str = "count") -> sp.csr_matrix:
    """M[i, j] = sum over (i at p, j at p + d), 1 <= d <= window, i != j, same session, of
    1 ("count") or 1/d ("inverse"); ``forward=False`` adds the mirrored pairs too (symmetric).

    Counted per distance and summed as c_1/1 + c_2/2 + ... in this order, as the job's Spark
    code does, so that the float scores (and so their ties) are bit-identical."""
    flat, sid = _flat(sessions)
    total = sp.csr_matrix((n_items, n_items))
    for d in range(1, window + 1):
        a, b = flat[:-d], flat[d:]
        ok = (sid[:-d] == sid[d:]) & (a != b)
        rows, cols = (a[ok], b[ok]) if forward else (np.r_[a[ok], b[ok]], np.r_[b[ok], a[ok]])
        counts = sp.coo_matrix((np.ones(len(rows)), (rows, cols)),
                               shape=(n_items, n_items)).tocsr()
        counts.sum_duplicates()
        total = total + (counts if weight == "count" else counts / float(d))
    return total.tocsr()


def knn_normalise(co: sp.csr_matrix, counts: np.ndarray, *, alpha: float = 0.5,
                  lam: float = 20.0) -> sp.csr_matrix:
    """co(i, j) / ((n_i + lambda)^alpha (n_j + lambda)^(1 - alpha))."""
    left = sp.diags(1.0 / np.power(counts + lam, alpha))
    right = sp.diags(1.0 / np.power(counts + lam, 1.0 - alpha))
    return (left @ co @ right).tocsr()


# --- top-k lists ---------------------------------------------------------------------------

def top_k_rows(scores: sp.csr_matrix, queries: np.ndarray, k: int) -> np.ndarray:
    """(V, k) item codes, -1 padded: each query row's best k nonzero columns by score desc,
    ties to the smaller code; rows not in ``queries`` stay empty."""
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    indptr, indices, data = scores.indptr, scores.indices, scores.data
    for q in queries:
        a, b = indptr[q], indptr[q + 1]
        if a == b:
            continue
        cols, vals = indices[a:b], data[a:b]
        keep = (cols != q) & (vals > 0)
        cols, vals = cols[keep], vals[keep]
        order = np.lexsort((cols, -vals))[:k]
        out[q, :len(order)] = cols[order]
    return out


def popularity_lists(counts: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    order = np.lexsort((np.arange(len(counts)), -counts))
    top = order[counts[order] > 0][:k + 1]
    out = np.full((len(counts), k), -1, dtype=np.int64)
    for q in queries:
        row = top[top != q][:k]
        out[q, :len(row)] = row
    return out


# --- metrics -------------------------------------------------------------------------------

def ranks_of(lists: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """1-based rank of each pair's next item in its prev item's list; 0 = not in the list."""
    hit = lists[pairs[:, 0]] == pairs[:, 1:2]
    found = hit.any(axis=1)
    return np.where(found, hit.argmax(axis=1) + 1, 0)


def rank_metrics(r: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """HR/MRR/NDCG at each k from 1-based ranks (0 = miss)."""
    out: dict[str, float] = {}
    for k in ks:
        hit = (r > 0) & (r <= k)
        out[f"hr@{k}"] = float(hit.mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / np.maximum(r, 1), 0.0).mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(np.maximum(r, 1) + 1.0),
                                          0.0).mean())
    return out


def metrics(lists: np.ndarray, pairs: np.ndarray, n_train_items: int,
            ks: tuple[int, ...] = KS) -> dict[str, float]:
    queries = np.unique(pairs[:, 0])
    out = rank_metrics(ranks_of(lists, pairs), ks)
    for k in ks:
        recs = lists[queries, :k]
        out[f"coverage@{k}"] = float(len(np.unique(recs[recs >= 0])) / max(n_train_items, 1))
    return out


# --- baselines -----------------------------------------------------------------------------

def baselines(split: Split, *, k: int = max(KS), cooc_window: int = 3, alpha: float = 0.5,
              lam: float = 20.0, rules_windows: tuple[int, ...] = (1, 2, 3, 5, 10)
              ) -> dict[str, dict[str, float]]:
    n = split.n_items
    counts = item_counts(split.train, n)
    n_train_items = int((counts > 0).sum())
    queries = np.unique(split.pairs[:, 0])
    out = {"popularity": metrics(popularity_lists(counts, queries, k), split.pairs,
                                 n_train_items)}
    co = pair_matrix(split.train, n, window=cooc_window, forward=False)
    out[f"cooc_knn (window {cooc_window})"] = metrics(
        top_k_rows(knn_normalise(co, counts, alpha=alpha, lam=lam), queries, k), split.pairs,
        n_train_items)
    for w in rules_windows:
        rules = pair_matrix(split.train, n, window=w, forward=True, weight="inverse")
        out[f"sequential_rules (window {w})"] = metrics(top_k_rows(rules, queries, k),
                                                        split.pairs, n_train_items)
    return out


def describe(split: Split) -> str:
    counts = item_counts(split.train, split.n_items)
    return (f"{len(split.train):,} training sessions ({int(counts.sum()):,} events, "
            f"{int((counts > 0).sum()):,} items), {len(split.test):,} test sessions, "
            f"{len(split.pairs):,} test pairs")


def table(rows: dict[str, dict[str, float]], columns: tuple[str, ...] = (
        "hr@10", "mrr@10", "ndcg@10", "hr@20", "mrr@20", "ndcg@20", "coverage@20")) -> str:
    width = max(len(name) for name in rows) + 2
    lines = ["model".ljust(width) + "".join(c.rjust(12) for c in columns)]
    for name, m in rows.items():
        lines.append(name.ljust(width) + "".join(f"{m[c]:12.4f}" for c in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench import real_logs

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="+", help=f"real logs: {', '.join(real_logs.SOURCES)}")
    p.add_argument("--rules-windows", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    args = p.parse_args(argv)
    for name in args.logs:
        split = load_split(real_logs.events_path(name))
        print(f"\n## {name}: {describe(split)}")
        print(table(baselines(split, rules_windows=tuple(args.rules_windows))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
