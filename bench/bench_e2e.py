"""End-to-end benchmark: ./spark-submit.sh on cached logs, wall time, peak RSS, stage table.

    .venv/bin/python -m bench.bench_e2e                       # 1M and 10M events, both eval modes
    .venv/bin/python -m bench.bench_e2e --sizes 10000000 --eval on
    .venv/bin/python -m bench.bench_e2e --set train.num_partitions=2 --driver-memory 3g

RSS is sampled every 0.5 s over the whole process tree started by spark-submit.sh (the JVM,
the Python driver, the PySpark daemon and its forked workers), summed; shared pages of
forked workers count once per process, so the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench import datagen

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# Settings of the benchmark (the shape): dim 64 on local[2].
BASE_SET = ["train.vector_size=64"]


class RssSampler(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled every ``period``."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.period = period
        self.peak = 0
        self.peak_parts: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, parts = 0, {}
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = p.name()
                except psutil.Error:
                    continue
                total += rss
                key = "java" if "java" in name else "python" if "python" in name else name
                parts[key] = parts.get(key, 0) + rss
            if total > self.peak:
                self.peak, self.peak_parts = total, parts
            self.stop.wait(self.period)


def run_job(data: Path, *, sets: list[str], driver_memory: str, master: str,
            label: str) -> dict:
    out = ROOT / "bench" / ".data" / "out" / label
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["./spark-submit.sh", "--master", master, "--input", str(data / "events"),
           "--output", str(out), "--run-date", datagen.RUN_DATE]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, ITEM2VEC_DRIVER_MEMORY=driver_memory)
    log = RESULTS / f"e2e_{label}.log"
    print(f"$ ITEM2VEC_DRIVER_MEMORY={driver_memory} {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    res = {"label": label, "events": datagen.counts(data)["events"], "rc": rc,
           "wall_s": round(wall, 1), "peak_rss_gb": round(sampler.peak / 2**30, 2),
           "peak_rss_parts_gb": {k: round(v / 2**30, 2) for k, v in sampler.peak_parts.items()},
           "driver_memory": driver_memory, "master": master, "sets": sets, "log": str(log)}
    latest = out / "LATEST"
    if rc == 0 and latest.exists():
        manifest = json.loads((out / latest.read_text().strip() / "manifest.json").read_text())
        res["timings_s"] = manifest["timings_s"]
        cfg = manifest.get("config", {})  # defaults change: record what this run resolved
        res["resolved"] = {f"{sec}.{key}": cfg.get(sec, {}).get(key)
                           for sec, key in (("train", "vector_size"), ("train", "window"),
                                            ("train", "iterations"), ("train", "num_partitions"),
                                            ("corpus", "copies"), ("corpus", "subsample"))}
        res["counts"] = {k: v for k, v in manifest["counts"].items() if k != "events_rejected"}
        models = manifest.get("metrics", {}).get("models", {})
        res["hr@10"] = {m: v.get("hr@10") for m, v in models.items()}
    else:
        res["tail"] = log.read_text()[-2000:]
    print(f"  -> rc={rc} wall {wall:.1f}s peak RSS {sampler.peak / 2**30:.2f} GB",
          file=sys.stderr, flush=True)
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
