"""End-to-end benchmark: ./spark-submit.sh on cached logs, wall time, peak RSS, stage table.

    .venv/bin/python -m bench.bench_e2e                       # 1M and 10M events, both eval modes
    .venv/bin/python -m bench.bench_e2e --sizes 10000000 --eval on
    .venv/bin/python -m bench.bench_e2e --set train.num_partitions=2 --driver-memory 3g

Each run starts from an empty output, so with evaluation on it is a first night: the
evaluation trains a holdout model (bench_nightly.py measures the later nights, which score the
previous run's lists instead). The run's manifest is read from the run LATEST names
(``dt=D/run=<id>``), or from ``_rejected/`` when a quality gate refused it (exit 3). RSS is
sampled every 0.5 s over the whole process tree started by spark-submit.sh (bench/jobrun.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench import datagen, jobrun

ROOT = jobrun.ROOT
RESULTS = jobrun.RESULTS
# Settings of the benchmark (the shape): dim 64 on local[2].
BASE_SET = ["train.vector_size=64"]


def run_job(data: Path, *, sets: list[str], driver_memory: str, master: str,
            label: str) -> dict:
    out = jobrun.OUT / label
    shutil.rmtree(out, ignore_errors=True)
    args = ["--input", str(data / "events"), "--output", str(out), "--run-date", datagen.RUN_DATE]
    for s in sets:
        args += ["--set", s]
    res = jobrun.submit(args, log=RESULTS / f"e2e_{label}.log", driver_memory=driver_memory,
                        master=master)
    manifest, where = jobrun.run_manifest(out, rc=res["rc"])
    res = jobrun.summarize(res | {"label": label, "events": datagen.counts(data)["events"],
                                  "driver_memory": driver_memory, "master": master,
                                  "sets": sets, "run": where}, manifest)
    if manifest is not None:
        cfg = manifest.get("config", {})  # defaults change: record what this run resolved
        res["resolved"] = {f"{sec}.{key}": cfg.get(sec, {}).get(key)
                           for sec, key in (("train", "vector_size"), ("train", "window"),
                                            ("train", "iterations"), ("train", "num_partitions"),
                                            ("corpus", "copies"), ("corpus", "subsample"),
                                            ("similar", "mode"), ("similar", "search"))}
    return res


def stage_table(runs: list[dict]) -> str:
    stages: list[str] = []
    for r in runs:
        for s in r.get("timings_s", {}):
            if s not in stages:
                stages.append(s)
    head = f"{'stage':<18}" + "".join(f"{r['label']:>16}" for r in runs)
    lines = [head, "-" * len(head)]
    for s in stages:
        lines.append(f"{s:<18}" + "".join(f"{r.get('timings_s', {}).get(s, float('nan')):>16.1f}"
                                          for r in runs))
    lines.append(f"{'WALL (process)':<18}" + "".join(f"{r['wall_s']:>16.1f}" for r in runs))
    lines.append(f"{'peak RSS GB':<18}" + "".join(f"{r['peak_rss_gb']:>16.2f}" for r in runs))
    lines.append(f"{'us / event':<18}" + "".join(f"{1e6 * r['wall_s'] / r['events']:>16.1f}"
                                                  for r in runs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,10000000", help="events, comma-separated")
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--eval", choices=["on", "off", "both"], default="both")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra --set for the job (repeatable)")
    p.add_argument("--driver-memory", default="3g")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--tag", default="", help="suffix of result labels/files")
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    evals = {"on": [True], "off": [False], "both": [False, True]}[a.eval]
    runs = []
    for ev in evals:
        for n in sizes:
            data = datagen.dataset(n, a.items)
            label = f"{datagen._short(n)}-eval{'on' if ev else 'off'}{a.tag}"
            sets = BASE_SET + a.sets + [f"evaluate.enabled={'true' if ev else 'false'}"]
            runs.append(run_job(data, sets=sets, driver_memory=a.driver_memory,
                                master=a.master, label=label))
    print(stage_table(runs))
    ratios = {}
    for ev in evals:
        tag = f"eval{'on' if ev else 'off'}"
        sel = {r["events"]: r for r in runs if tag in r["label"] and r["rc"] == 0}
        if len(sel) >= 2:
            lo, hi = min(sel), max(sel)
            ratio = (sel[hi]["wall_s"] / hi) / (sel[lo]["wall_s"] / lo)
            ratios[tag] = round(ratio, 3)
            print(f"time per event {datagen._short(hi)} / {datagen._short(lo)} ({tag}): "
                  f"{ratio:.2f}x")
    summary = {"runs": runs, "per_event_ratio": ratios}
    name = f"e2e{a.tag}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
