"""Running the job as the scheduler does, for the benchmarks: ./spark-submit.sh in a child
process whose whole output goes to a log file, its peak memory sampled meanwhile, and what the
run published (or kept, when a gate refused it) read back from the output root.

RSS is sampled every 0.5 s over the whole process tree (the JVM, the Python driver, the PySpark
daemon and its forked workers), summed; shared pages of forked workers count once per process,
so the figure is an upper bound.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "bench" / ".data" / "out"
# Driver-log warnings that mean data travelled from the driver inside tasks.
BLOB_WARNINGS = ("task of very large size", "Broadcasting large task binary")


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


def run_logged(cmd: list[str], *, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` from the project root, stdout and stderr into ``log``; wall time, peak RSS,
    the machine's load average before and after, and the blob warnings found in the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    return {"rc": rc, "wall_s": round(wall, 1), "peak_rss_gb": round(sampler.peak / 2**30, 2),
            "peak_rss_parts_gb": {k: round(v / 2**30, 2) for k, v in sampler.peak_parts.items()},
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "log": rel(log), "warnings": blob_warnings(log)}


def submit(args: list[str], *, log: Path, driver_memory: str, master: str = "local[2]",
           env: dict[str, str] | None = None) -> dict[str, Any]:
    """``./spark-submit.sh --master MASTER ARGS`` with ITEM2VEC_DRIVER_MEMORY set (see
    run_logged); the command line is recorded and echoed on stderr."""
    cmd = ["./spark-submit.sh", "--master", master, *args]
    full_env = dict(os.environ, ITEM2VEC_DRIVER_MEMORY=driver_memory, **(env or {}))
    shown = " ".join(f"{k}={v!r}" for k, v in (env or {}).items())
    line = f"ITEM2VEC_DRIVER_MEMORY={driver_memory} {shown + ' ' if shown else ''}{' '.join(cmd)}"
    print(f"$ {line}", file=sys.stderr, flush=True)
    res = run_logged(cmd, log=log, env=full_env)
    res["command"] = line
    print(f"  -> rc={res['rc']} wall {res['wall_s']:.1f}s peak RSS {res['peak_rss_gb']:.2f} GB"
          f" load {res['load_before']:.1f}/{res['load_after']:.1f}", file=sys.stderr, flush=True)
    return res


def blob_warnings(log: Path) -> dict[str, int]:
    """How many lines of ``log`` carry each of BLOB_WARNINGS."""
    text = log.read_text(errors="replace")
    return {w: sum(1 for line in text.splitlines() if w in line) for w in BLOB_WARNINGS}


def run_manifest(out: Path, *, rc: int) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, its run directory relative to ``out``) of the run that just ended: the one
    LATEST names when it published (rc 0), the newest under _rejected/ when a gate refused it
    (rc 3), else (None, None)."""
    if rc == 0:
        latest = out / "LATEST"
        if latest.exists():
            pointer = latest.read_text().strip()
            return json.loads((out / pointer / "manifest.json").read_text()), pointer
    if rc == 3:
        kept = sorted((out / "_rejected").glob("*/manifest.json"),
                      key=lambda p: p.stat().st_mtime)
        if kept:
            return json.loads(kept[-1].read_text()), str(kept[-1].parent.relative_to(out))
    return None, None


def job_seconds(manifest: dict[str, Any]) -> dict[str, float]:
    """The job's own time: ``stages`` = sum of the top-level stage timings (the "eval ..."
    stages are parts of "evaluate"), ``manifest_wall`` = finished_at - started_at (whole
    seconds; includes what runs between stages)."""
    timings = manifest.get("timings_s", {})
    out = {"stages": round(sum(v for k, v in timings.items() if not k.startswith("eval ")), 1)}
    start, end = manifest.get("started_at"), manifest.get("finished_at")
    if start and end:
        out["manifest_wall"] = (_instant(end) - _instant(start)).total_seconds()
    return out


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def summarize(run: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest fields the benchmarks report, added to ``run``."""
    if manifest is None:
        run["tail"] = (ROOT / run["log"]).read_text(errors="replace")[-3000:]
        return run
    metrics = manifest.get("metrics") or {}
    run.update({
        "timings_s": manifest.get("timings_s", {}), "job_s": job_seconds(manifest),
        "counts": {k: v for k, v in manifest.get("counts", {}).items()
                   if k != "events_rejected"},
        "events_rejected": manifest.get("counts", {}).get("events_rejected", {}),
        "input": manifest.get("input", {}), "training": manifest.get("training", {}),
        "datasets": manifest.get("datasets", []), "status": manifest.get("status"),
        "method": metrics.get("method"), "evaluated_run": metrics.get("evaluated_run"),
        "pairs": metrics.get("pairs"),
        "hr@10": {m: v.get("hr@10") for m, v in (metrics.get("models") or {}).items()},
    })
    return run


def rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (for result files)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else float("nan")


def machine() -> dict[str, Any]:
    """What the numbers were taken on."""
    return {"cpus": os.cpu_count(), "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0], "date": dt.date.today().isoformat(),
            "code": code_version()}


def code_version() -> str:
    """The commit measured: a SNAPSHOT file (first line: the commit) when the benchmarks run
    from an exported copy of the tree, else git's HEAD, marked when the tree has changes."""
    marker = ROOT / "SNAPSHOT"
    if marker.exists():
        return marker.read_text().splitlines()[0] + " (snapshot)"
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "item2vec", "jobs",
                                "conf"], cwd=ROOT, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty.strip() else "")


def plan_scans(event_log: Path, path_part: str) -> list[dict[str, Any]]:
    """Spark's own account of the file scans of ``path_part`` in an event log
    (spark.eventLog.enabled, uncompressed): one entry per scan node that listed its files (the
    same node shows up in every later plan that reads a cache built from it), with its driver
    metrics ("number of files read", "size of files read", "number of partitions read"), its
    PartitionFilters and the SQL executions whose plans contain it."""
    scans: dict[int, dict[str, Any]] = {}  # accumulator of "number of files read" -> scan
    values: dict[int, int] = {}
    for line in _event_lines(event_log):
        event = json.loads(line)
        kind = event.get("Event", "")
        if kind.endswith(("SparkListenerSQLExecutionStart",
                          "SparkListenerSQLAdaptiveExecutionUpdate")):
            for node in _nodes(event["sparkPlanInfo"]):
                meta = node.get("metadata") or {}
                if not node["nodeName"].startswith("Scan") or path_part not in str(
                        meta.get("Location", "")):
                    continue
                metrics = {m["name"]: m["accumulatorId"] for m in node.get("metrics", [])}
                key = metrics.get("number of files read")
                if key is None:
                    continue
                scan = scans.setdefault(key, {"metrics": metrics, "executions": set(),
                                              "partition_filters": meta.get("PartitionFilters")})
                scan["executions"].add(event["executionId"])
        elif kind.endswith("SparkListenerDriverAccumUpdates"):
            for acc, value in event["accumUpdates"]:
                values[acc] = values.get(acc, 0) + value
    out = []
    for scan in scans.values():
        read = {name: values.get(acc) for name, acc in scan["metrics"].items()
                if name in ("number of files read", "size of files read",
                            "number of partitions read")}
        if read.get("number of files read") is None:  # planned, never listed: not read
            continue
        out.append({"executions": sorted(scan["executions"]),
                    "partition_filters": scan["partition_filters"]} | read)
    return sorted(out, key=lambda s: s["executions"][0])


def _event_lines(event_log: Path) -> list[str]:
    """Lines of an event log: one file, or a rolling log's directory of events_N_* files."""
    if not event_log.is_dir():
        return event_log.read_text().splitlines()
    parts = sorted(event_log.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    return [line for part in parts for line in part.read_text().splitlines()]


def _nodes(info: dict[str, Any]) -> list[dict[str, Any]]:
    found = [info]
    for child in info.get("children", []):
        found += _nodes(child)
    return found


def event_log_conf(directory: Path) -> dict[str, str]:
    """SPARK_SUBMIT_OPTS_EXTRA for spark-submit.sh: an uncompressed event log in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return {"SPARK_SUBMIT_OPTS_EXTRA": f"--conf spark.eventLog.enabled=true "
                                       f"--conf spark.eventLog.dir=file://{directory} "
                                       f"--conf spark.eventLog.compress=false "
                                       f"--conf spark.eventLog.rolling.enabled=false"}


def newest(directory: Path) -> Path:
    return max(directory.iterdir(), key=lambda p: p.stat().st_mtime)


_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def label_path(label: str) -> str:
    """A file-name-safe form of a run label."""
    return _SAFE.sub("_", label)
