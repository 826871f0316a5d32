"""Cost that follows the day: a 30-day dt-partitioned log read with and without a lookback window.

    .venv/bin/python -m bench.bench_pruning                  # 2M events, 3 files per day, 2 reps
    .venv/bin/python -m bench.bench_pruning --events 10000000 --reps 1

The log (bench/datagen.py, ``files_per_day``) is laid out as ``events/dt=YYYY-MM-DD/`` with a
few Parquet files per UTC day. The job runs for the log's last day with
``input.lookback_days=7`` and with ``0`` (all history), alternating (7, 0, 7, 0, ...), each on
a fresh output, evaluation off (its cost is bench_nightly's subject; here only the input
changes). Reported per run: the manifest's input block (files_read, bytes_read,
partitions_pruned) and events read, wall time of the spark-submit process, the job's own time,
peak RSS, and Spark's own count of what it scanned: the scan node's driver metrics ("number
of files read", "size of files read", "number of partitions read") from the run's event log,
next to the partition filter Spark applied. Results: bench/results/pruning<tag>.json and
the logs bench/results/pruning<tag>_*.log.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench import datagen, jobrun

BASE_SET = ["train.vector_size=64", "evaluate.enabled=false"]


def run(data: Path, *, lookback: int, rep: int, driver_memory: str, tag: str,
        extra: list[str]) -> dict[str, Any]:
    label = f"lookback{lookback}-r{rep}"
    root = jobrun.OUT / f"pruning{tag}" / label
    shutil.rmtree(root, ignore_errors=True)
    out, events_log = root / "out", root / "eventlog"
    args = ["--input", str(data / "events"), "--output", str(out), "--run-date",
            datagen.RUN_DATE]
    for s in [*BASE_SET, *extra, f"input.lookback_days={lookback}"]:
        args += ["--set", s]
    res = jobrun.submit(args, log=jobrun.RESULTS / f"pruning{tag}_{label}.log",
                        driver_memory=driver_memory, env=jobrun.event_log_conf(events_log))
    manifest, where = jobrun.run_manifest(out, rc=res["rc"])
    res = jobrun.summarize(res | {"label": label, "lookback_days": lookback, "rep": rep,
                                  "run": where}, manifest)
    logs = list(events_log.iterdir()) if events_log.exists() else []
    res["spark_scans"] = jobrun.plan_scans(jobrun.newest(events_log),
                                           str(data / "events")) if logs else []
    print(f"  input {res.get('input')}, Spark scans {res['spark_scans']}", flush=True)
    return res


def listing(data: Path) -> dict[str, Any]:
    """What the log holds: days, files, bytes (from the file system)."""
    files = list((data / "events").rglob("*.parquet"))
    days = {f.parent.name for f in files}
    return {"days": len(days), "files": len(files), "bytes": sum(f.stat().st_size for f in files)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for lookback in sorted({r["lookback_days"] for r in runs}):
        mine = [r for r in runs if r["lookback_days"] == lookback and "job_s" in r]
        if not mine:
            continue
        scans = mine[0]["spark_scans"]
        out[str(lookback)] = {
            "reps": len(mine), "input": mine[0]["input"],
            "events_read": mine[0]["counts"]["events_read"],
            "spark_scans": len(scans),
            "spark_files_read": [s["number of files read"] for s in scans],
            "spark_bytes_read": [s["size of files read"] for s in scans],
            "spark_partitions_read": [s.get("number of partitions read") for s in scans],
            "spark_partition_filters": scans[0]["partition_filters"] if scans else None,
            "wall_s": jobrun.median([r["wall_s"] for r in mine]),
            "job_stages_s": jobrun.median([r["job_s"]["stages"] for r in mine]),
            "read_s": jobrun.median([r["timings_s"].get("read", 0.0) for r in mine]),
            "sessions_s": jobrun.median([r["timings_s"].get("sessions", 0.0) for r in mine]),
            "peak_rss_gb": round(statistics.median([r["peak_rss_gb"] for r in mine]), 2),
            "all_wall_s": [r["wall_s"] for r in mine],
            "stages_s": {k: jobrun.median([r["timings_s"].get(k, 0.0) for r in mine])
                         for k in mine[0]["timings_s"]},
            "warnings": {w: sum(r["warnings"][w] for r in mine) for w in jobrun.BLOB_WARNINGS},
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--files-per-day", type=int, default=3)
    p.add_argument("--lookbacks", default="7,0")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--driver-memory", default="3g")
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--tag", default="")
    a = p.parse_args(argv)
    jobrun.RESULTS.mkdir(parents=True, exist_ok=True)
    data = datagen.dataset(a.events, a.items, files_per_day=a.files_per_day)
    lookbacks = [int(x) for x in a.lookbacks.split(",")]
    runs = [run(data, lookback=lb, rep=rep + 1, driver_memory=a.driver_memory, tag=a.tag,
                extra=a.sets)
            for rep in range(a.reps) for lb in lookbacks]
    result = {"machine": jobrun.machine(), "data": str(data), "log": listing(data),
              "generated": datagen.counts(data), "run_date": datagen.RUN_DATE,
              "runs": runs, "summary": summary(runs)}
    (jobrun.RESULTS / f"pruning{a.tag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"log": result["log"], "summary": result["summary"]}, indent=1))
    return result


if __name__ == "__main__":
    main()
