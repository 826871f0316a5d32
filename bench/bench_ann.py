"""Approximate (faiss IVF, HNSW) vs exact cosine top-k through the real Spark path, in one run.

    .venv/bin/python -m bench.bench_ann                          # 100k and 1M items, dim 64
    .venv/bin/python -m bench.bench_ann --sizes 100000 --reps 3 --real auto

For each data set, every search goes through item2vec.similar.top_k_similar on Spark local[2]
and writes Parquet (as the job does), on the same seeded query sample:
  exact  top_k_similar(..., queries=Q) on a seeded random subset of --exact-queries items
         (all items when V <= --exact-all-max); its time is extrapolated linearly to V (every
         query costs the same: one pass over the V vectors). Measured once per rep and shared
         by every method's speed-up.
  ivf,   top_k_similar(..., search=method): the call builds the index on the driver and
  hnsw   broadcasts it ("build s"); writing its output searches all V items ("search s").
         Above --approx-all-max items (default: from 1M on), it searches the same sampled
         queries as exact and the search time is extrapolated linearly to V as well (a query's
         cost does not depend on which item it is; the build is always over all V).
total s = build s + search s; speed-up = exact s (all V) / total s. recall@10 = mean over the
sampled queries of |approximate top 10 & exact top 10| / 10. Peak RSS is the summed RSS of this
process and all its descendants (JVM, Python workers), sampled every 0.5 s; an upper bound.

Data: a seeded mixture of V/100 Gaussian clusters in dim 64 (centres N(0, 1), per-item noise
N(0, --spread^2); spread 1.0 gives within-cluster cosines of about 0.5 and overlapping
clusters), and optionally (--real) the item vectors of a model trained by bench_e2e.py.
Medians over --reps repetitions (--reps-large for V >= 1M and the trained model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.compute as pc
import pyarrow.dataset as ds

from item2vec import ann, config, similar

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class RssPeak(threading.Thread):
    """Peak summed RSS of this process tree (driver, JVM, Python workers) while running."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.period, self.peak = psutil.Process(), period, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            total = 0
            for p in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self.halt.wait(self.period)

    def __enter__(self) -> RssPeak:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join()


def clustered(items: int, dim: int, spread: float, seed: int = 0) -> np.ndarray:
    """A seeded mixture of items/100 Gaussian clusters, L2-normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, items // 100), dim)).astype(np.float32)
    out = np.empty((items, dim), dtype=np.float32)
    for s in range(0, items, 200_000):  # chunks keep the float64 temporaries small
        n = min(200_000, items - s)
        out[s:s + n] = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal(
            (n, dim), dtype=np.float32)
    return similar.normalize(out)


def real_vectors(path: str) -> tuple[np.ndarray, str] | None:
    """Item vectors of a published run (dir with item_vectors/, or 'auto': newest under
    bench/.data/out/), ordered by item_index."""
    if path == "auto":
        found = sorted((ROOT / "bench" / ".data" / "out").glob("*/dt=*/**/item_vectors"),
                       key=lambda p: p.stat().st_mtime)
        if not found:
            return None
        src = found[-1]
    else:
        src = Path(path)
        src = src if src.name == "item_vectors" else src / "item_vectors"
    t = ds.dataset(str(src), format="parquet").to_table(columns=["item_index", "vector"])
    vec = t.sort_by("item_index").column("vector").combine_chunks()
    return similar.normalize(vec.values.to_numpy().reshape(len(vec), -1)), str(src)


def top10(path: str, queries: np.ndarray) -> np.ndarray:
    """similar_index of ranks 1..10 for ``queries`` (sorted) from a written result."""
    t = ds.dataset(path, format="parquet").to_table(
        filter=pc.field("item_index").isin(queries) & (pc.field("rank") <= 10),
        columns=["item_index", "rank", "similar_index"])
    t = t.sort_by([("item_index", "ascending"), ("rank", "ascending")])
    assert np.array_equal(np.unique(t.column("item_index").to_numpy()), queries)
    return t.column("similar_index").to_numpy().reshape(len(queries), 10)


def run_method(spark, method: str, m: np.ndarray, q: np.ndarray, *, k: int, all_max: int,
               params: ann.Params, block_bytes: int, out: Path) -> dict:
    """One approximate search through top_k_similar: build (the call) and search (the write),
    the search extrapolated to all V when it ran on the sampled queries."""
    v = len(m)
    hq = None if v <= all_max else q
    with RssPeak() as peak:
        t0 = time.perf_counter()
        df = similar.top_k_similar(spark, m, k=k, block_bytes=block_bytes, partitions=0,
                                   search=method,
                                   params=params, queries=hq)
        t1 = time.perf_counter()
        df.write.mode("overwrite").parquet(str(out))
        t2 = time.perf_counter()
    return {"build": t1 - t0, "search": (t2 - t1) * (1 if hq is None else v / len(hq)),
            "queries": v if hq is None else len(hq), "rss": peak.peak}


def measure(spark, name: str, m: np.ndarray, *, k: int, reps: int, exact_queries: int,
            exact_all_max: int, approx_all_max: int,
            methods: dict[str, tuple[str, ann.Params]],
            block_bytes: int, tmp: Path) -> list[dict]:
    """exact and every approximate method on the same data and the same sampled queries."""
    v = len(m)
    rng = np.random.default_rng(1)
    q = (np.arange(v, dtype=np.int32) if v <= exact_all_max
         else np.sort(rng.choice(v, exact_queries, replace=False)).astype(np.int32))
    runs: dict[str, list[dict]] = {name_: [] for name_ in ["exact", *methods]}
    recall: dict[str, float] = {"exact": 1.0}
    for rep in range(reps):
        with RssPeak() as peak:
            t0 = time.perf_counter()
            similar.top_k_similar(spark, m, k=k, block_bytes=block_bytes, partitions=0,
                                  search="exact", queries=q).write.mode(
                "overwrite").parquet(str(tmp / "exact"))
            t = (time.perf_counter() - t0) * v / len(q)
        runs["exact"].append({"build": 0.0, "search": t, "queries": len(q), "rss": peak.peak})
        want = top10(str(tmp / "exact"), q)
        line = [f"exact (all {v:,}) {t:.1f}s"]
        for method, (search, params) in methods.items():
            r = run_method(spark, search, m, q, k=k, all_max=approx_all_max, params=params,
                           block_bytes=block_bytes, out=tmp / method.replace(" ", "_"))
            runs[method].append(r)
            if method not in recall:
                got = top10(str(tmp / method.replace(" ", "_")), q)
                hits = (got[:, :, None] == want[:, None, :]).any(axis=2).sum()
                recall[method] = float(hits / want.size)
            line.append(f"{method} build {r['build']:.1f}s search {r['search']:.1f}s "
                        f"recall@10 {recall[method]:.4f}")
        print(f"  {name} rep {rep}: " + "; ".join(line), flush=True)
    exact_s = statistics.median(r["search"] for r in runs["exact"])
    rows = []
    for method, rs in runs.items():
        build = statistics.median(r["build"] for r in rs)
        search = statistics.median(r["search"] for r in rs)
        rows.append({"data": name, "items": v, "dim": int(m.shape[1]), "k": k, "reps": reps,
                     "method": method, "queries": rs[0]["queries"],
                     "extrapolated": rs[0]["queries"] < v, "build_s": build,
                     "search_s": search, "search_items_per_s": v / search,
                     "total_s": build + search, "speedup": exact_s / (build + search),
                     "recall@10": recall[method],
                     "peak_rss_gb": max(r["rss"] for r in rs) / 1e9,
                     "all_s": [{"build": r["build"], "search": r["search"]} for r in rs]})
    return rows


def table(rows: list[dict], methods: dict[str, tuple[str, ann.Params]], master: str) -> str:
    params = "; ".join(f"{n}: " + ", ".join(f"{key}={val}" for key, val in vars(p).items())
                       for n, (_, p) in methods.items())
    head = ("| data | items | search | build s | search s | search items/s | total s | "
            "speed-up vs exact | recall@10 | peak RSS GB |")
    out = [f"{params}; k={rows[0]['k'] if rows else '?'}; Spark {master}", "",
           head, "|" + " --- |" * 10]
    for r in rows:
        search = f"{r['search_s']:,.1f}" + (f" (from {r['queries']:,} queries)"
                                            if r["extrapolated"] else "")
        out.append(f"| {r['data']} | {r['items']:,} | {r['method']} | {r['build_s']:.1f} | "
                   f"{search} | {r['search_items_per_s']:,.0f} | {r['total_s']:,.0f} | "
                   f"{r['speedup']:.1f}x | {r['recall@10']:.4f} | {r['peak_rss_gb']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--reps-large", type=int, default=1, help="reps for V >= 1M")
    p.add_argument("--exact-queries", type=int, default=20_000)
    p.add_argument("--exact-all-max", type=int, default=0,
                   help="exact search on all items up to this V, else on --exact-queries")
    p.add_argument("--approx-all-max", type=int, default=999_999,
                   help="approximate searches cover all items up to this V, else the sampled "
                        "queries")
    p.add_argument("--methods", default=",".join(ann.METHODS),
                   help="approximate searches to compare with exact")
    p.add_argument("--ivf-nprobe", default="",
                   help="comma list: one ivf row per nprobe (default: similar.ivf_nprobe)")
    p.add_argument("--real", default="", help="published run dir, or 'auto' (bench/.data/out)")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="6g")
    a = p.parse_args(argv)
    cfg = config.load().similar
    methods: dict[str, tuple[str, ann.Params]] = {}
    for n in (n for n in a.methods.split(",") if n):
        ann.require(n)
        params = ann.params_for(n, cfg)
        if n == "ivf" and a.ivf_nprobe:
            for nprobe in (int(x) for x in a.ivf_nprobe.split(",")):
                methods[f"ivf nprobe={nprobe}"] = (n, dataclasses.replace(params, nprobe=nprobe))
        else:
            methods[n] = (n, params)
    RESULTS.mkdir(parents=True, exist_ok=True)

    from pyspark.sql import SparkSession

    from item2vec.sparkenv import get_spark
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers: this venv
    SparkSession.builder.master(a.master).config("spark.driver.memory", a.driver_memory) \
        .config("spark.ui.enabled", "false").getOrCreate()
    spark, _ = get_spark("bench-ann", log_level="ERROR", master=a.master, shuffle_partitions=0)

    sets: list[tuple[str, np.ndarray]] = []
    for size in (int(s) for s in a.sizes.split(",") if s):
        sets.append((f"clustered {size // 1000:,}k" if size < 1e6 else
                     f"clustered {size / 1e6:g}M", clustered(size, a.dim, a.spread)))
    if a.real:
        got = real_vectors(a.real)
        if got is not None:
            sets.append((f"trained model {len(got[0]) // 1000}k", got[0]))
            print(f"real vectors: {got[1]} {got[0].shape}", flush=True)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ann-"))
    try:
        for name, m in sets:
            reps = a.reps_large if len(m) >= 1_000_000 or name.startswith("trained") else a.reps
            print(f"{name}: V={len(m):,} dim={m.shape[1]} reps={reps}", flush=True)
            rows.extend(measure(spark, name, m, k=cfg.k, reps=reps,
                                exact_queries=a.exact_queries, exact_all_max=a.exact_all_max,
                                approx_all_max=a.approx_all_max, methods=methods,
                                block_bytes=cfg.block_bytes, tmp=tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    md = table(rows, methods, a.master)
    print("\n" + md)
    out = {"params": {n: ann.describe(p) for n, (_, p) in methods.items()}, "master": a.master,
           "spread": a.spread, "results": rows}
    (RESULTS / "ann.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "ann.md").write_text(md)
    return out


if __name__ == "__main__":
    main()
