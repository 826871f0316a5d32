"""Quality of the job's defaults vs baselines and MLlib's defaults on several synthetic logs.

    .venv/bin/python -m bench.bench_quality            # all datasets, ~10-15 min on 2 cores
    .venv/bin/python -m bench.bench_quality --only skewed

Each dataset is one seeded log with a different shape (noise, popularity skew, session length,
catalogue size). For each, jobs/tune.py runs once with no grid: the job's defaults,
MLlib's defaults, popularity and item co-occurrence kNN, all on the same time-based split.
The combined table (HR@10, MRR@10, NDCG@10, seconds) is printed and saved to
bench/results/quality.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from item2vec import sample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data" / "quality"
RESULTS = ROOT / "bench" / "results"
END = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
BASE = {"users": 6000, "items": 3000, "categories": 30, "sessions_per_user": 4.0,
        "session_length": 8.0, "zipf_exponent": 1.0, "noise": 0.1, "drift": 0.05,
        "days": 30, "seed": 21}
DATASETS = {
    "base": {},
    "noisy": {"noise": 0.3, "drift": 0.15},
    "skewed": {"zipf_exponent": 1.4},
    "short-sessions": {"session_length": 4.0, "sessions_per_user": 8.0},
    "large-catalogue": {"items": 20000, "categories": 200, "users": 12000},
}


def generate(name: str) -> Path:
    path = DATA / name
    if not (path / "_DONE").exists():
        sample.write_parquet(str(path), end=END, **(BASE | DATASETS[name]))
        (path / "_DONE").write_text("ok")
    return path


def run(name: str) -> list[dict]:
    path = generate(name)
    out = DATA / f"{name}-tune"
    env = dict(os.environ, ITEM2VEC_JOB="jobs/tune.py")
    cmd = [str(ROOT / "spark-submit.sh"), "--input", str(path / "events"), "--output", str(out),
           "--run-date", "2026-11-25", "--set", "evaluate.max_test_pairs=50000"]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    rows = pq.read_table(out / "tune-2026-11-25.parquet").to_pylist()
    return [r | {"dataset": name} for r in rows if r["variant"]]


def table(rows: list[dict]) -> str:
    lines = ["| dataset | model | HR@10 | MRR@10 | NDCG@10 | seconds |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['variant']} | {r['hr@10']:.4f} | "
                     f"{r['mrr@10']:.4f} | {r['ndcg@10']:.4f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(DATASETS), action="append")
    args = p.parse_args()
    rows: list[dict] = []
    for name in args.only or DATASETS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += run(name)
    text = table(rows)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
