"""IVF parameter sweep behind the similar.ivf_* defaults: faiss directly, no Spark.

    .venv/bin/python -m bench.sweep_ivf --data 1000000
    .venv/bin/python -m bench.sweep_ivf --data bench/.data/out/<run>/dt=2026-11-25 --nlist-mult 2,4

For each nlist (multiples of sqrt(V)), builds the index exactly as item2vec.ann does (seeded
k-means sample, spherical k-means, faiss's threads) and prints the build time, whether a build
with one thread gives the same bytes (--check-threads), then recall@10 against exact search and
single-thread search speed (queries/s, one faiss call for all queries, k + 1 = 21 neighbours)
for each nprobe, on a seeded sample of --queries items. Data: clustered V items (bench_ann.py's
generator) or the item vectors of a published run.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from bench.bench_ann import clustered, real_vectors
from item2vec import ann


def exact_top10(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = np.empty((len(q), 10), dtype=np.int64)
    for s in range(0, len(q), 256):
        qb = q[s:s + 256]
        scores = m[qb] @ m.T
        scores[np.arange(len(qb)), qb] = -np.inf
        part = np.argpartition(scores, -10, axis=1)[:, -10:]
        vals = np.take_along_axis(scores, part, axis=1)
        out[s:s + 256] = np.take_along_axis(part, np.argsort(-vals, axis=1), axis=1)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="1000000", help="item count (clustered) or a run dir")
    p.add_argument("--nlist-mult", default="4")
    p.add_argument("--nprobe", default="4,8,16,24,32,48,64")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--check-threads", action="store_true")
    a = p.parse_args(argv)
    faiss = ann.faiss_module()
    m = (clustered(int(a.data), 64, 1.0) if a.data.isdigit() else real_vectors(a.data)[0])
    v = len(m)
    q = np.sort(np.random.default_rng(1).choice(v, a.queries, replace=False))
    want = exact_top10(m, q)
    print(f"V={v:,} dim={m.shape[1]} queries={len(q):,}", flush=True)
    threads = faiss.omp_get_max_threads()
    for mult in (float(x) for x in a.nlist_mult.split(",")):
        params = ann.IvfParams(nlist=round(mult * math.sqrt(v)), nprobe=1)
        t = time.perf_counter()
        blob = ann.build_index(m, params)
        line = (f"nlist {params.lists(v):,}: build {time.perf_counter() - t:.1f}s "
                f"({threads} threads)")
        if a.check_threads:
            faiss.omp_set_num_threads(1)
            t = time.perf_counter()
            same = ann.build_index(m, params).tobytes() == blob.tobytes()
            line += f", 1 thread {time.perf_counter() - t:.1f}s, same bytes: {same}"
            faiss.omp_set_num_threads(threads)
        print(line, flush=True)
        for nprobe in (int(x) for x in a.nprobe.split(",")):
            index = ann.LoadedIndex(blob, ann.IvfParams(params.nlist, nprobe))  # 1 thread
            t = time.perf_counter()
            ids = index.search(q, 21)
            el = time.perf_counter() - t
            got = np.array([[x for x in row if x != qq][:10] for row, qq in zip(ids, q,
                                                                               strict=True)])
            rec = (got[:, :, None] == want[:, None, :]).any(axis=2).mean()
            print(f"  nprobe {nprobe:>3}: recall@10 {rec:.4f}, {len(q) / el:,.0f} queries/s",
                  flush=True)
            faiss.omp_set_num_threads(threads)


if __name__ == "__main__":
    main()
