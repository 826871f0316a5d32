"""Run every benchmark and print one combined table (results also in bench/results/*.json).

    .venv/bin/python -m bench.run_all                 # train + topk + e2e (about 25 min)
    .venv/bin/python -m bench.run_all --only topk,train
    .venv/bin/python -m bench.run_all --only ann     # IVF / HNSW vs exact top-k (about 15 min)
    .venv/bin/python -m bench.run_all --only nightly,pruning,blobs   # the nightly job's costs
    .venv/bin/python -m bench.run_all --e2e-set train.num_partitions=2 ...

Each benchmark runs in its own process, one after the other (never concurrently: the
machine has few cores and every ratio is measured within one benchmark's run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PY = sys.executable


def run(script: str, *args: str) -> None:
    cmd = [PY, "-m", f"bench.{script.removesuffix('.py')}", *args]
    print("$ " + " ".join(cmd), flush=True)
    env = dict(os.environ)
    if script in ("bench_topk.py", "bench_ann.py"):  # numpy GEMM at full speed for exact top-k
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def combined_table() -> str:
    rows: list[tuple[str, str, str, str]] = []  # metric, measured, target, met
    tr = load("train.json")
    if tr:
        res = tr["results"]
        g = next(v for k, v in res.items() if k.startswith("gensim"))
        for name, r in res.items():
            if name.startswith("gensim"):
                rows.append((f"train {name}", f"{r['tokens_per_s']:,.0f} tok/s, HR@10 "
                             f"{r['hr@10']:.4f}", "reference", ""))
                continue
            x = r["tokens_per_s"] / g["tokens_per_s"]
            ok = x >= 2.0 and r["hr@10"] >= g["hr@10"]
            rows.append((f"train {name}", f"{r['tokens_per_s']:,.0f} tok/s = {x:.2f}x gensim, "
                         f"HR@10 {r['hr@10']:.4f} ({r['hr@10'] - g['hr@10']:+.4f})",
                         ">= 2x, HR >= gensim", "yes" if ok else "NO"))
    tk = load("topk.json")
    if tk:
        for n, ratio in tk["ratio_vs_gemm"].items():
            if n == "gemm":
                rows.append(("topk numpy GEMM", f"{tk['gflops']['gemm']:.1f} GFLOP/s",
                             "reference", ""))
                continue
            rows.append((f"topk {n}", f"{tk['gflops'][n]:.1f} GFLOP/s = {ratio:.2f} of GEMM "
                         f"({tk['median_s'][n]:.1f}s)", ">= 0.70" if n != "old" else "(before)",
                         ("yes" if ratio >= 0.7 else "NO") if n != "old" else ""))
    an = load("ann.json")
    if an:
        for r in an["results"]:
            if r["method"] == "exact":
                continue
            ok = r["recall@10"] >= 0.95
            rows.append((f"ann {r['method']} {r['data']}", f"{r['speedup']:.1f}x exact (build "
                         f"{r['build_s']:.0f}s + search {r['search_s']:.0f}s), recall@10 "
                         f"{r['recall@10']:.3f}", "recall@10 >= 0.95", "yes" if ok else "NO"))
    nightly = load("nightly.json") or {}
    for size, res in nightly.items():
        if not isinstance(res, dict) or "summary" not in res:
            continue
        for name in ("a_previous_run", "b_holdout"):
            v = res["summary"].get(name)
            if not v or v["ratio_job_stages"]["median"] is None:
                continue
            ratio = v["ratio_job_stages"]["median"]
            rows.append((f"nightly {size} {name} / evaluation off",
                         f"{ratio:.2f}x job time ({v['job_stages_s']:.0f}s vs "
                         f"{res['summary']['c_off']['job_stages_s']:.0f}s, median of "
                         f"{v['reps']}), peak RSS {v['peak_rss_gb']:.2f} GB",
                         "<= 1.15x" if name == "a_previous_run" else "(reference)",
                         ("yes" if ratio <= 1.15 else "NO") if name == "a_previous_run"
                         else ""))
    pr = load("pruning.json")
    if pr:
        for lookback, v in pr["summary"].items():
            rows.append((f"pruning lookback_days={lookback} ({pr['log']['days']} days, "
                         f"{pr['log']['files']} files)",
                         f"files_read {v['input']['files_read']}, bytes_read "
                         f"{v['input']['bytes_read']:,}, pruned {v['input']['partitions_pruned']}"
                         f"; Spark scanned {v['spark_files_read']} files; "
                         f"{v['job_stages_s']:.0f}s", "reads only the window",
                         ""))
    bl = load("blobs.json")
    if bl:
        verdict = bl["verdict"]
        r = bl["model"]["result"] or {}
        rows.append((f"blobs {r.get('items', 0):,} x {r.get('dim')} item_vectors + rank",
                     f"warnings {bl['model']['warnings']}, item_vectors "
                     f"{r.get('item_vectors_s')}s, rank {r.get('queries'):,} items "
                     f"{r.get('rank_s')}s, peak RSS {bl['model']['peak_rss_gb']} GB",
                     "no warning", "yes" if verdict["model_no_warnings"] else "NO"))
        if "job" in bl:
            rows.append((f"blobs plain job {bl['job'].get('events', 0):,} events",
                         f"warnings {bl['job']['warnings']}", "no warning",
                         "yes" if not any(bl["job"]["warnings"].values()) else "NO"))
    for path in sorted(RESULTS.glob("e2e*.json")):  # every stored e2e run
        e2e = json.loads(path.read_text())
        for r in e2e["runs"]:
            ok = r["rc"] == 0 and r["wall_s"] <= 300 and r["peak_rss_gb"] <= 6
            rows.append((f"e2e {r['label']}", f"{r['wall_s']:.0f}s wall, peak RSS "
                         f"{r['peak_rss_gb']:.2f} GB, rc {r['rc']}",
                         "<= 300s, <= 6 GB" if r["events"] > 5e6 else "(1M)",
                         ("yes" if ok else "NO") if r["events"] > 5e6 else ""))
        for tag, ratio in e2e.get("per_event_ratio", {}).items():
            rows.append((f"e2e time/event 10M/1M {tag}", f"{ratio:.2f}x", "<= 1.2x",
                         "yes" if ratio <= 1.2 else "NO"))
    w = [max(len(r[i]) for r in rows) if rows else 10 for i in range(4)]
    out = [f"{'benchmark':<{w[0]}}  {'measured':<{w[1]}}  {'target':<{w[2]}}  met"]
    out += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="train,topk,e2e")
    p.add_argument("--e2e-set", nargs="*", default=[], help="extra --set for the e2e job")
    p.add_argument("--table-only", action="store_true", help="just print the stored results")
    a = p.parse_args()
    if not a.table_only:
        only = a.only.split(",")
        if "train" in only:
            run("bench_train.py")
        if "topk" in only:
            run("bench_topk.py", "--old")
        if "ann" in only:
            run("bench_ann.py", "--reps", "1", "--approx-all-max", "0", "--ivf-nprobe", "32,448",
                "--real", "auto")
        if "e2e" in only:
            extra = [x for s in a.e2e_set for x in ("--set", s)]
            run("bench_e2e.py", *extra)
        if "nightly" in only:  # 2M and 10M events, 2 repetitions (about 3 h on 2 busy cores)
            run("bench_nightly.py")
        if "pruning" in only:
            run("bench_pruning.py")
        if "blobs" in only:
            run("bench_blobs.py")
    print()
    print(combined_table())


if __name__ == "__main__":
    main()
