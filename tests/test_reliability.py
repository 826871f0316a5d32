"""Reliability of the whole job with real Spark on a tiny log spanning six days.

- concurrency: two runs against one output; the loser exits 1 naming the lock holder
- task retry: injected first-attempt failures are retried (local[2,3]) with identical output,
  and fail the run (exit 1, nothing published) when Spark may not retry (local[2])
- reproducibility: same input, config and seed -> identical vocabulary, vectors, neighbours
- idempotence, lookback and retention of dt=... partitions
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec import publish
from item2vec.errors import PublishConflict
from item2vec.publish import Publisher
from item2vec.storage import Storage
from jobs.run import main

ROOT = Path(__file__).resolve().parents[1]
FIRST_DAY, DAYS = dt.date(2026, 1, 5), 6  # events on 2026-01-05 .. 2026-01-10
LOOKBACK = 2
TINY = [f"--set={kv}" for kv in (
    "vocabulary.min_count=1", "train.vector_size=8", "train.iterations=1", "corpus.copies=1",
    "corpus.subsample=0", "similar.k=3", "similar.partitions=1", "evaluate.enabled=false",
    "spark.shuffle_partitions=1", "spark.log_level=ERROR", "train.num_partitions=1",
    "train.seed=11", f"input.lookback_days={LOOKBACK}")]
DATASETS = ("vocabulary", "item_vectors", "similar_items")
FAULTS = "--set=spark.fail_first_attempt=[\"corpus\",\"similar\"]"


def tiny_log(path: Path) -> tuple[str, list[dt.datetime]]:
    rows: dict[str, list] = {"user_id": [], "item_id": [], "timestamp": []}
    for day in range(DAYS):
        start = dt.datetime.combine(FIRST_DAY + dt.timedelta(days=day), dt.time(8), dt.UTC)
        for u in range(15):
            for s in range(2):
                for j in range(4):
                    rows["user_id"].append(f"u{u:02d}")
                    rows["item_id"].append(f"i{(u + 3 * s + j + day) % 8}")
                    rows["timestamp"].append(start + dt.timedelta(hours=3 * s, minutes=u,
                                                                   seconds=30 * j))
    pq.write_table(pa.table(rows), path)
    return str(path), rows["timestamp"]


def read_sorted(run: Path) -> dict[str, list]:
    """The three datasets as sorted Python rows: equal means identical output."""
    tables = {n: ds.dataset(str(run / n), format="parquet").to_table() for n in DATASETS}
    return {
        "vocabulary": sorted(tables["vocabulary"].to_pylist(), key=lambda r: r["item_index"]),
        "item_vectors": sorted(tables["item_vectors"].to_pylist(), key=lambda r: r["item_index"]),
        "similar_items": sorted(tables["similar_items"].to_pylist(),
                                key=lambda r: (r["item_id"], r["rank"])),
    }


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def files(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in run.rglob("*")}


def run_job(log: str, out: Path, run_date: str, *extra: str) -> int:
    return main(["--input", log, "--output", str(out), "--run-date", run_date, *TINY, *extra])


def spark_submit(*runs: list[str], timeout: float = 400) -> list[subprocess.CompletedProcess]:
    """Run ./spark-submit.sh once per argument list, concurrently, each in its own process
    group (killed whole if it outlives the timeout)."""
    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g"}
    procs = [subprocess.Popen([str(ROOT / "spark-submit.sh"), *args], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True) for args in runs]
    done = []
    try:
        deadline = time.monotonic() + timeout
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:  # timed out or interrupted: no JVM left behind
                os.killpg(proc.pid, 9)
                proc.wait()
    return done


def error_line(stderr: str) -> str:
    """The job's one-line reason (the JVM's own log lines may come after it)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("item2vec: ")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]



@pytest.fixture(scope="module")
def log(tmp_path_factory) -> tuple[str, list[dt.datetime]]:
    return tiny_log(tmp_path_factory.mktemp("log") / "events.parquet")


@pytest.fixture(scope="module")
def history(spark, log, tmp_path_factory) -> dict:
    """01-08, 01-09, 01-08 again, then 01-11 with retention: one output, four runs."""
    path, _ = log
    out = tmp_path_factory.mktemp("history") / "out"
    h: dict = {"out": out}
    assert run_job(path, out, "2026-01-08") == 0
    h["first"] = read_sorted(out / "dt=2026-01-08")
    h["first_manifest"] = manifest(out / "dt=2026-01-08")
    h["first_files"] = set(files(out / "dt=2026-01-08"))
    assert run_job(path, out, "2026-01-09") == 0
    h["other_manifest"] = manifest(out / "dt=2026-01-09")
    h["other_files"] = files(out / "dt=2026-01-09")
    assert run_job(path, out, "2026-01-08") == 0  # the re-run
    h["rerun"] = read_sorted(out / "dt=2026-01-08")
    h["rerun_manifest"] = manifest(out / "dt=2026-01-08")
    h["rerun_files"] = set(files(out / "dt=2026-01-08"))
    h["after_rerun"] = sorted(p.name for p in out.iterdir())
    h["latest_after_rerun"] = (out / "LATEST").read_text().strip()
    h["before_retention"] = files(out / "dt=2026-01-09")
    assert run_job(path, out, "2026-01-11", "--set", "output.retention_days=2") == 0
    h["last_manifest"] = manifest(out / "dt=2026-01-11")
    return h


# -- 6. reproducibility ----------------------------------------------------------------------
def test_same_input_config_seed_give_identical_outputs(history):
    first, rerun = history["first"], history["rerun"]
    assert first["vocabulary"] == rerun["vocabulary"]
    assert first["item_vectors"] == rerun["item_vectors"]  # bit-identical float vectors
    assert first["similar_items"] == rerun["similar_items"]
    assert len(first["vocabulary"]) == 8 and len(first["similar_items"]) == 8 * 3


def test_manifest_records_config_seed_versions_fingerprint(history):
    m1, m2 = history["first_manifest"], history["rerun_manifest"]
    assert m1["run_id"] != m2["run_id"]
    assert m1["config"] == m2["config"]
    assert m1["config"]["train"]["seed"] == 11 and m1["config"]["train"]["num_partitions"] == 1
    assert m1["config"]["input"]["lookback_days"] == LOOKBACK
    assert {"item2vec", "python", "pyspark", "numpy", "pyarrow"} <= set(m1["versions"])
    assert m1["spark_version"]
    fp = m1["input"]["fingerprint"]
    assert fp.startswith("sha256:") and fp == m2["input"]["fingerprint"]
    assert m1["input"]["path"].endswith("events.parquet")


# -- 7. idempotence, lookback, retention ------------------------------------------------------
def test_rerun_replaces_exactly_that_partition(history):
    out = history["out"]
    assert history["after_rerun"] == ["LATEST", "_staging", "_trash", "dt=2026-01-08",
                                      "dt=2026-01-09"]
    assert history["rerun_manifest"]["run_id"] != history["first_manifest"]["run_id"]
    # the old partition is gone entirely (part files carry a fresh uuid per write)
    data = {f for f in history["first_files"] if f.endswith(".parquet")}
    assert data and not data & history["rerun_files"]
    assert history["before_retention"] == history["other_files"]  # 01-09 untouched
    assert manifest(out / "dt=2026-01-09")["run_id"] == history["other_manifest"]["run_id"]
    # LATEST only moves forward: backfilling the older date leaves it on 01-09
    assert history["latest_after_rerun"] == "dt=2026-01-09"


@pytest.mark.parametrize("which, run_date", [("first_manifest", "2026-01-08"),
                                             ("other_manifest", "2026-01-09"),
                                             ("last_manifest", "2026-01-11")])
def test_lookback_is_relative_to_the_run_date(history, log, which, run_date):
    _, times = log
    end = dt.datetime.combine(dt.date.fromisoformat(run_date) + dt.timedelta(days=1),
                              dt.time(), dt.UTC)
    start = end - dt.timedelta(days=LOOKBACK)
    counts = history[which]["counts"]
    expected = {"after_run_date": sum(t >= end for t in times),
                "before_lookback": sum(t < start for t in times)}
    assert counts["events_read"] == len(times)
    assert counts["events_rejected"] == {k: v for k, v in expected.items() if v}
    assert counts["events_accepted"] == sum(start <= t < end for t in times) > 0


def test_retention_prunes_old_partitions_after_publishing(history):
    out = history["out"]
    assert sorted(p.name for p in out.glob("dt=*")) == ["dt=2026-01-09", "dt=2026-01-11"]
    assert (out / "LATEST").read_text().strip() == "dt=2026-01-11"
    assert files(out / "dt=2026-01-09") == history["other_files"]
    assert list((out / publish.STAGING).iterdir()) == []
    assert list((out / publish.TRASH).iterdir()) == []


def test_retention_never_prunes_the_partition_latest_names(tmp_path):
    out = tmp_path / "out"
    for name in ("dt=2026-01-01", "dt=2026-01-02", "dt=2026-01-19", "dt=2026-01-20"):
        (out / name).mkdir(parents=True)
    (out / "LATEST").write_text("dt=2026-01-01\n")
    (out / "dt=2026-01-03-notes").mkdir()  # not a partition name: never touched
    pub = Publisher(Storage(None, str(out)), dt.date(2026, 1, 20), "r")
    assert pub.prune(0) == []
    assert pub.prune(5) == ["dt=2026-01-02"]
    assert sorted(p.name for p in out.iterdir()) == [
        "LATEST", "dt=2026-01-01", "dt=2026-01-03-notes", "dt=2026-01-19", "dt=2026-01-20"]


# -- 4. task retry ---------------------------------------------------------------------------
def test_injected_failures_without_retries_fail_and_publish_nothing(spark, log, tmp_path, capsys):
    assert spark.sparkContext.master == "local[2]"  # local mode without retries
    out = tmp_path / "out"
    code = run_job(log[0], out, "2026-01-08", FAULTS)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "InjectedFault" in err and "injected failure in stage 'corpus'" in err
    assert err.strip().splitlines()[-1].startswith("item2vec: failed: ")
    assert not list(out.glob("dt=*")) and not (out / "LATEST").exists()
    assert not (out / publish.LOCK).exists()  # released on the way out


@pytest.fixture(scope="module")
def retried(log, tmp_path_factory) -> dict:
    """The same job through spark-submit on local[2,3] (up to 3 attempts per task), with and
    without injected faults, run side by side."""
    d = tmp_path_factory.mktemp("retried")
    common = ["--master", "local[2,3]", "--input", log[0], "--run-date", "2026-01-08", *TINY]
    faulty, clean = spark_submit(
        [*common, "--output", str(d / "faulty"), FAULTS,
         "--set", "spark.log_level=WARN"],  # WARN shows the lost task attempts
        [*common, "--output", str(d / "clean")])
    return {"faulty": faulty, "clean": clean, "dir": d}


def test_retried_tasks_give_identical_outputs(retried):
    faulty, clean, d = retried["faulty"], retried["clean"], retried["dir"]
    assert clean.returncode == 0, clean.stderr[-4000:]
    assert faulty.returncode == 0, faulty.stderr[-4000:]
    # the faults did fire, in both stages, and Spark retried the tasks
    for stage in ("corpus", "similar"):
        assert f"injected failure in stage '{stage}' (first attempt)" in faulty.stderr
    assert "injected failure" not in clean.stderr
    run = d / "faulty" / "dt=2026-01-08"
    assert manifest(run)["config"]["spark"]["fail_first_attempt"] == ["corpus", "similar"]
    assert (run / "_SUCCESS").exists()
    assert read_sorted(run) == read_sorted(d / "clean" / "dt=2026-01-08")


# -- 3. concurrency --------------------------------------------------------------------------
def test_second_lock_is_refused_naming_the_holder(tmp_path):
    store = Storage(None, str(tmp_path / "out"))
    store.mkdirs(store.root)
    a = Publisher(store, dt.date(2026, 1, 8), "run-a")
    b = Publisher(Storage(None, str(tmp_path / "out")), dt.date(2026, 1, 8), "run-b")
    a.lock()
    try:
        with pytest.raises(PublishConflict, match=rf"is locked by run run-a \(pid {os.getpid()} "):
            b.lock()
        assert json.loads((tmp_path / "out" / publish.LOCK).read_text())["run_id"] == "run-a"
    finally:
        a.unlock()
    b.lock()  # free again once the holder is done
    b.unlock()
    assert not (tmp_path / "out" / publish.LOCK).exists()


def test_two_runs_race_the_loser_exits_with_locked_by(spark, log, tmp_path, monkeypatch, capsys):
    """Winner: main() in a thread of this process. Loser: ./spark-submit.sh, started while the
    winner holds the lock. The winner's publish step waits until the loser has finished, so
    the two runs really overlap whatever the machine's speed."""
    out = tmp_path / "out"
    loser_done = threading.Event()
    original = Publisher.publish

    def publish_after_loser(self, *args, **kwargs):
        assert loser_done.wait(timeout=400)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Publisher, "publish", publish_after_loser)
    result: dict = {}
    winner = threading.Thread(target=lambda: result.update(code=run_job(log[0], out,
                                                                        "2026-01-09")))
    winner.start()
    try:
        deadline = time.monotonic() + 120
        while not (out / publish.LOCK).exists():
            assert winner.is_alive() and time.monotonic() < deadline, "winner never locked"
            time.sleep(0.1)
        holder = json.loads((out / publish.LOCK).read_text())
        (loser,) = spark_submit(["--master", "local[1]", "--input", log[0],
                                 "--output", str(out), "--run-date", "2026-01-09", *TINY])
    finally:
        loser_done.set()
        winner.join(timeout=400)
    assert not winner.is_alive()
    assert loser.returncode == 1, loser.stderr[-3000:]
    line = error_line(loser.stderr)
    assert line.startswith("item2vec: error: output ") and \
        f"is locked by run {holder['run_id']} (pid {os.getpid()}" in line, line
    assert result["code"] == 0, capsys.readouterr().err
    run = out / "dt=2026-01-09"
    assert (out / "LATEST").read_text().strip() == "dt=2026-01-09"
    assert manifest(run)["run_id"] == holder["run_id"]
    assert (run / "_SUCCESS").exists()
    tables = read_sorted(run)
    assert len(tables["vocabulary"]) == len(tables["item_vectors"]) == 8
    assert len(tables["similar_items"]) == 8 * 3
    assert not (out / publish.LOCK).exists()
    assert list((out / publish.STAGING).iterdir()) == []
