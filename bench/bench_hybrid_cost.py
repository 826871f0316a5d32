"""What the hybrid ranking costs: the job before it (embedding-only similar items, the last
release without it) against the job now (hybrid, the default), same log, same machine, runs
alternated in one benchmark.

    .venv/bin/python -m bench.bench_hybrid_cost                      # 10M events, 2 reps each
    .venv/bin/python -m bench.bench_hybrid_cost --events 1000000 --reps 1
    .venv/bin/python -m bench.bench_hybrid_cost --before <commit>

"Before" is checked out from git (``--before``, default the last commit without the hybrid)
into a temporary worktree and run with its own spark-submit.sh and this checkout's .venv;
"after" is this checkout. Evaluation is off in both, so the numbers are the ranking's own cost
(the evaluation's is in bench/bench_nightly.py). Results: bench/results/hybrid_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import datagen, jobrun

ROOT = jobrun.ROOT
BEFORE = "1b1f129"  # the last release with embedding-only similar items


def run_once(label: str, tree: Path, events: Path, out: Path, *, driver_memory: str,
             log: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, ITEM2VEC_DRIVER_MEMORY=driver_memory,
               ITEM2VEC_VENV=str(ROOT / ".venv"))
    cmd = [str(tree / "spark-submit.sh"), "--master", "local[2]", "--input", str(events),
           "--output", str(out), "--run-date", datagen.RUN_DATE,
           "--set", "evaluate.enabled=false", "--set", "train.vector_size=64"]
    print(f"$ [{label}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    res = jobrun.run_logged(cmd, log=log, env=env)
    pointer = (out / "LATEST").read_text().strip()
    manifest = json.loads((out / pointer / "manifest.json").read_text())
    res |= {"label": label, "timings_s": manifest["timings_s"],
            "job_s": jobrun.job_seconds(manifest), "counts": manifest["counts"]}
    print(f"  -> rc={res['rc']} wall {res['wall_s']}s peak {res['peak_rss_gb']} GB",
          file=sys.stderr, flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--before", default=BEFORE)
    p.add_argument("--driver-memory", default="3g")
    args = p.parse_args(argv)
    data = datagen.dataset(args.events, args.items)
    events = data / "events"
    work = Path(tempfile.mkdtemp(prefix="i2v-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(work), args.before], cwd=ROOT,
                   check=True, capture_output=True)
    runs = []
    try:
        for rep in range(args.reps):
            for label, tree in (("before", work), ("after", ROOT)):
                log = jobrun.RESULTS / f"hybrid_cost_{label}_{args.events}_r{rep + 1}.log"
                runs.append(run_once(label, tree, events, jobrun.OUT / f"hybrid-{label}",
                                     driver_memory=args.driver_memory, log=log))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=ROOT,
                       capture_output=True)
    summary = {}
    for label in ("before", "after"):
        mine = [r for r in runs if r["label"] == label and r["rc"] == 0]
        summary[label] = {"wall_s": jobrun.median([r["wall_s"] for r in mine]),
                          "peak_rss_gb": max(r["peak_rss_gb"] for r in mine)}
    ratio = summary["after"]["wall_s"] / summary["before"]["wall_s"]
    # Diagnostics for a noisy machine: each repetition's jobs ran back to back, so their ratio
    # compares like with like; and the training stage does the same work in both jobs, so the
    # walls without it show what the hybrid adds without the training's spread.
    pairs = [(b, a) for b, a in zip(runs[0::2], runs[1::2], strict=True)
             if b["rc"] == 0 and a["rc"] == 0]
    per_rep = [a["wall_s"] / b["wall_s"] for b, a in pairs]
    without = [jobrun.median([r["wall_s"] - r["timings_s"].get("train", 0.0) for r in side])
               for side in ([b for b, _ in pairs], [a for _, a in pairs])]
    result = {"events": args.events, "items": args.items, "before": args.before,
              "after": jobrun.code_version(), "machine": jobrun.machine(), "runs": runs,
              "median": summary, "ratio_after_before": round(ratio, 3),
              "ratio_per_repetition": [round(x, 3) for x in per_rep],
              "ratio_median_per_repetition": round(statistics.median(per_rep), 3),
              "ratio_without_train": round(without[1] / without[0], 3)}
    jobrun.RESULTS.mkdir(parents=True, exist_ok=True)
    (jobrun.RESULTS / f"hybrid_cost_{args.events}.json").write_text(json.dumps(result,
                                                                             indent=2) + "\n")
    for r in runs:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r["timings_s"].items())
        print(f"{r['label']:>6}: wall {r['wall_s']:7.1f} s  peak {r['peak_rss_gb']:.2f} GB  "
              f"[{stages}]")
    print(f"median wall: before {summary['before']['wall_s']:.1f} s, after "
          f"{summary['after']['wall_s']:.1f} s, ratio {ratio:.2f}")
    print(f"per repetition: {', '.join(f'{x:.2f}' for x in per_rep)} (median "
          f"{result['ratio_median_per_repetition']:.2f}); without the training stage (the same "
          f"work in both): {without[0]:.1f} s vs {without[1]:.1f} s, ratio "
          f"{result['ratio_without_train']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
