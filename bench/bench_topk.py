"""Exact all-pairs cosine top-k vs raw float32 GEMM on the same shapes, in one run.

    .venv/bin/python -m bench.bench_topk                   # 100k items x dim 64, k 20, 3 reps
    .venv/bin/python -m bench.bench_topk --items 50000 --dim 32 --reps 5 --sweep

Three timings per repetition, interleaved so machine noise hits all of them alike:
  gemm   raw ``q @ m.T`` over the same query blocks (numpy, all cores), FLOP = 2 Q V d
  block  item2vec.similar.top_k_block on the same blocks in this process (GEMM + selection)
  spark  item2vec.similar.top_k_similar through Spark local[N] (broadcast, mapInArrow tasks,
         Arrow rows back to the JVM), all Q = V queries, forced with a noop write
``gemm`` and ``block`` run on --sample-blocks blocks (rates do not depend on how many);
``spark`` always does the full V x V problem. Ratios are FLOP/s relative to ``gemm``.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines, they pin a slow kernel) are
removed from this benchmark's environment only; the BLAS kernel in use is printed.
"""

from __future__ import annotations

import os
import sys

_SLOW_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(v in os.environ for v in _SLOW_ENV) and __name__ == "__main__":
    env = {k: v for k, v in os.environ.items() if k not in _SLOW_ENV}
    again = ["-m", __spec__.name] if __spec__ else sys.argv[:1]  # as started: python -m bench.…
    os.execve(sys.executable, [sys.executable, *again, *sys.argv[1:]], env)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

from item2vec import similar  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def blas_info() -> str:
    return "; ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
                     f"threads={i['num_threads']}" for i in threadpool_info()
                     if i["user_api"] == "blas")


def make_matrix(items: int, dim: int, seed: int = 0) -> np.ndarray:
    """Clustered random vectors (like trained embeddings: neighbours are much closer)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, items // 1000), dim)).astype(np.float32)
    m = centres[rng.integers(0, len(centres), items)] + 0.7 * rng.standard_normal(
        (items, dim)).astype(np.float32)
    return similar.normalize(m)


def time_gemm(m: np.ndarray, rows: int, blocks: int) -> float:
    t0 = time.perf_counter()
    for b in range(blocks):
        q = m[b * rows:(b + 1) * rows]
        _ = q @ m.T
    return time.perf_counter() - t0


def time_block(m: np.ndarray, rows: int, blocks: int, k: int, fn=similar.top_k_block) -> float:
    t0 = time.perf_counter()
    for b in range(blocks):
        qi = np.arange(b * rows, min((b + 1) * rows, len(m)), dtype=np.int32)
        fn(qi, m[qi], m, k)
    return time.perf_counter() - t0


def old_selection(qi: np.ndarray, q: np.ndarray, m: np.ndarray, k: int):
    """The previous selection (argpartition over every score row), for the record."""
    scores = q @ m.T
    scores[np.arange(len(qi)), qi] = -np.inf
    return similar._top_k_sorted(scores, k)


def worker_blas(spark) -> list[str]:
    def probe(_):
        import numpy  # noqa: F401 - load OpenBLAS so that threadpoolctl sees it
        from threadpoolctl import threadpool_info as info
        yield "; ".join(f"{i['internal_api']} {i.get('architecture')} threads={i['num_threads']}"
                        f" OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
                        for i in info() if i["user_api"] == "blas")
    sc = spark.sparkContext
    return sorted(set(sc.parallelize(range(sc.defaultParallelism), sc.defaultParallelism)
                      .mapPartitions(probe).collect()))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--block-bytes", type=int, default=134_217_728)
    p.add_argument("--sample-blocks", type=int, default=24)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--no-spark", action="store_true")
    p.add_argument("--old", action="store_true", help="also time the previous selection")
    p.add_argument("--sweep", action="store_true",
                   help="top_k_block cost vs items and dim (log-log plot)")
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)

    m = make_matrix(a.items, a.dim)
    V, d, k = a.items, a.dim, min(a.k, a.items - 1)
    rows = similar.block_rows(V, a.block_bytes)
    blocks = min(a.sample_blocks, -(-V // rows))
    q_sample = min(V, rows * blocks)
    flop_sample, flop_all = 2.0 * q_sample * V * d, 2.0 * V * V * d
    print(f"shapes: V={V:,} dim={d} k={k} block rows={rows} ({blocks} sampled blocks, "
          f"{q_sample:,} queries); full problem {flop_all / 1e12:.2f} TFLOP", flush=True)
    print(f"driver BLAS: {blas_info()}", flush=True)

    spark = None
    if not a.no_spark:
        from item2vec.sparkenv import get_spark
        spark, _ = get_spark("bench-topk", log_level="ERROR", master=a.master,
                             shuffle_partitions=0)
        print(f"worker BLAS ({a.master}): {worker_blas(spark)}", flush=True)

    # Exactness check on one block: the fast selection equals a full sort (score desc, index asc).
    qi = np.arange(min(rows, V), dtype=np.int32)
    fast, slow = similar.top_k_block(qi, m[qi], m, k), old_selection(qi, m[qi], m, k)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    print("exactness check on one block: top_k_block == full argpartition + sort", flush=True)

    t: dict[str, list[float]] = {"gemm": [], "block": [], "spark": [], "old": []}
    for rep in range(a.reps):
        t["gemm"].append(time_gemm(m, rows, blocks))
        t["block"].append(time_block(m, rows, blocks, k))
        if a.old:
            t["old"].append(time_block(m, rows, min(blocks, 4), k, fn=old_selection)
                            * blocks / min(blocks, 4))
        if spark is not None:
            t0 = time.perf_counter()
            similar.top_k_similar(spark, m, k=k, block_bytes=a.block_bytes, partitions=0,
                                  search="exact").write.format(
                "noop").mode("overwrite").save()
            t["spark"].append(time.perf_counter() - t0)
        print(f"rep {rep}: " + ", ".join(f"{n} {v[-1]:.2f}s" for n, v in t.items() if v),
              flush=True)

    med = {n: statistics.median(v) for n, v in t.items() if v}
    gf = {"gemm": flop_sample / med["gemm"] / 1e9, "block": flop_sample / med["block"] / 1e9}
    if "old" in med:
        gf["old"] = flop_sample / med["old"] / 1e9
    if "spark" in med:
        gf["spark"] = flop_all / med["spark"] / 1e9
    print(f"\n{'path':<44}{'median s':>10}{'GFLOP/s':>10}{'vs GEMM':>9}")
    names = {"gemm": f"numpy q @ m.T ({q_sample:,} x {V:,} x {d})",
             "block": f"top_k_block, same blocks (k={k})",
             "old": "previous selection (argpartition), same",
             "spark": f"top_k_similar via Spark {a.master}, {V:,}^2"}
    for n in gf:
        print(f"{names[n]:<44}{med[n]:>10.2f}{gf[n]:>10.1f}{gf[n] / gf['gemm']:>9.2f}")
    out = {"items": V, "dim": d, "k": k, "block_rows": rows, "sample_blocks": blocks,
           "median_s": med, "gflops": gf, "ratio_vs_gemm": {n: gf[n] / gf["gemm"] for n in gf},
           "all_s": t, "driver_blas": blas_info()}
    if spark is not None:
        out["spark_full_s"] = med["spark"]
        out["worker_blas"] = worker_blas(spark)

    if a.sweep:
        out["sweep"] = sweep(k)
    (RESULTS / "topk.json").write_text(json.dumps(out, indent=2))
    return out


def sweep(k: int, queries: int = 2048) -> list[dict]:
    """Seconds per query of top_k_block as items and dim grow; log-log plot if matplotlib."""
    rows_out = []
    for dim in (32, 64, 128):
        for items in (25_000, 50_000, 100_000, 200_000):
            m = make_matrix(items, dim, seed=1)
            rows = similar.block_rows(items, 134_217_728)
            blocks = max(1, queries // rows)
            ts = [time_block(m, rows, blocks, k) / (rows * blocks) for _ in range(3)]
            g = [time_gemm(m, rows, blocks) / (rows * blocks) for _ in range(3)]
            rows_out.append({"items": items, "dim": dim, "s_per_query": statistics.median(ts),
                             "gemm_s_per_query": statistics.median(g)})
            print(f"sweep items={items:>7,} dim={dim:>3}: "
                  f"{1e3 * rows_out[-1]['s_per_query']:.3f} ms/query "
                  f"(gemm {1e3 * rows_out[-1]['gemm_s_per_query']:.3f})", flush=True)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 4))
        for dim in (32, 64, 128):
            pts = [r for r in rows_out if r["dim"] == dim]
            ax.loglog([r["items"] for r in pts], [r["s_per_query"] * 1e3 for r in pts], "o-",
                      label=f"top_k_block dim {dim}")
            ax.loglog([r["items"] for r in pts], [r["gemm_s_per_query"] * 1e3 for r in pts],
                      ":", color=ax.lines[-1].get_color(), label=f"GEMM dim {dim}")
        ax.set_xlabel("items (V)")
        ax.set_ylabel("ms per query item (all V candidates)")
        ax.set_title("exact top-k cost ~ V x dim")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(RESULTS / "topk_scaling.png", dpi=110)
    except ImportError:
        pass
    return rows_out


if __name__ == "__main__":
    main()
