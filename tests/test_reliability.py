"""Reliability of the whole job with real Spark on a tiny log spanning six days.

- concurrency: two runs against one output; the loser exits 1 naming the lease holder
- task retry: injected first-attempt failures are retried (local[2,3]) with identical output,
  and fail the run (exit 1, nothing published) when Spark may not retry (local[2])
- reproducibility: same input, config and seed -> identical vocabulary, vectors, neighbours
- idempotence (a re-run publishes a new run of its date), lookback and retention of dates
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec import publish, reader
from item2vec.errors import PublishConflict
from item2vec.faults import first_attempt_fails
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
FAULTY_JOB = "tests/faulty_run.py"  # the job with first-attempt failures in corpus and similar


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


def run_of(out: Path, run_date: str) -> Path:
    """The run published for a date (what dt=…/CURRENT names)."""
    return Path(reader.run_for_date(out, run_date))


def files(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in run.rglob("*")}


def run_job(log: str, out: Path, run_date: str, *extra: str) -> int:
    return main(["--input", log, "--output", str(out), "--run-date", run_date, *TINY, *extra])


def spark_submit(*runs: list[str], timeout: float = 400,
                 jobs: tuple[str | None, ...] = ()) -> list[subprocess.CompletedProcess]:
    """Run ./spark-submit.sh once per argument list, concurrently, each in its own process
    group (killed whole if it outlives the timeout); ``jobs[i]`` picks run i's job script."""
    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g"}
    jobs = jobs or (None,) * len(runs)
    procs = [subprocess.Popen([str(ROOT / "spark-submit.sh"), *args], text=True,
                              env=env | ({"ITEM2VEC_JOB": job} if job else {}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True) for args, job in zip(runs, jobs,
                                                                           strict=True)]
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
    h["first_run"] = run_of(out, "2026-01-08")
    h["first"] = read_sorted(h["first_run"])
    h["first_manifest"] = manifest(h["first_run"])
    h["first_files"] = files(h["first_run"])
    assert run_job(path, out, "2026-01-09") == 0
    h["other_run"] = run_of(out, "2026-01-09")
    h["other_manifest"] = manifest(h["other_run"])
    h["other_files"] = files(h["other_run"])
    assert run_job(path, out, "2026-01-08") == 0  # the re-run
    h["rerun_run"] = run_of(out, "2026-01-08")
    h["rerun"] = read_sorted(h["rerun_run"])
    h["rerun_manifest"] = manifest(h["rerun_run"])
    h["after_rerun"] = sorted(p.name for p in out.iterdir())
    h["runs_after_rerun"] = sorted(p.name for p in (out / "dt=2026-01-08").iterdir())
    h["first_files_after_rerun"] = files(h["first_run"])
    h["latest_after_rerun"] = (out / "LATEST").read_text().strip()
    h["before_retention"] = files(h["other_run"])
    assert run_job(path, out, "2026-01-11", "--set", "output.retention_days=2") == 0
    h["last_manifest"] = manifest(run_of(out, "2026-01-11"))
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
def test_rerun_publishes_a_new_run_of_that_date(history):
    first, rerun = history["first_manifest"]["run_id"], history["rerun_manifest"]["run_id"]
    assert rerun != first
    assert history["rerun_run"].name == f"run={rerun}"
    assert [n for n in history["after_rerun"] if n != "_metrics"] == [
        "LATEST", "dt=2026-01-08", "dt=2026-01-09"]
    # the date's pointer moved to the re-run; the first run stays, untouched, for readers that
    # resolved it just before (the next run deletes it)
    assert history["runs_after_rerun"] == sorted(["CURRENT", f"run={first}", f"run={rerun}"])
    assert history["first_files_after_rerun"] == history["first_files"]
    assert history["before_retention"] == history["other_files"]  # 01-09 untouched
    # LATEST only moves forward: backfilling the older date leaves it on 01-09
    assert history["latest_after_rerun"] == \
        f"dt=2026-01-09/run={history['other_manifest']['run_id']}"


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


def test_retention_prunes_old_dates_after_publishing(history):
    out = history["out"]
    assert sorted(p.name for p in out.glob("dt=*")) == ["dt=2026-01-09", "dt=2026-01-11"]
    last = history["last_manifest"]["run_id"]
    assert (out / "LATEST").read_text().strip() == f"dt=2026-01-11/run={last}"
    assert files(history["other_run"]) == history["other_files"]
    assert not (out / "_staging").exists() and not (out / "_trash").exists()
    assert not (out / publish.LOCK).exists()


# -- 4. task retry ---------------------------------------------------------------------------
def test_injected_failures_without_retries_fail_and_publish_nothing(spark, log, tmp_path, capsys):
    assert spark.sparkContext.master == "local[2]"  # local mode without retries
    out = tmp_path / "out"
    code = main(["--input", log[0], "--output", str(out), "--run-date", "2026-01-08", *TINY],
                wrap=first_attempt_fails("corpus", "similar"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "InjectedFault" in err and "injected failure in stage 'corpus'" in err
    assert err.strip().splitlines()[-1].startswith("item2vec: failed: ")
    assert not list(out.glob("dt=*")) and not (out / "LATEST").exists()
    assert not (out / publish.LOCK).exists()  # released on the way out
    assert not (out / "dt=2026-01-08").exists()  # the failed run's directory is removed


@pytest.fixture(scope="module")
def retried(log, tmp_path_factory) -> dict:
    """The same job through spark-submit on local[2,3] (up to 3 attempts per task), with and
    without injected faults, run side by side."""
    d = tmp_path_factory.mktemp("retried")
    common = ["--master", "local[2,3]", "--input", log[0], "--run-date", "2026-01-08", *TINY]
    faulty, clean = spark_submit(
        [*common, "--output", str(d / "faulty"),
         "--set", "spark.log_level=WARN"],  # WARN shows the lost task attempts
        [*common, "--output", str(d / "clean")], jobs=(FAULTY_JOB, None))
    return {"faulty": faulty, "clean": clean, "dir": d}


def test_retried_tasks_give_identical_outputs(retried):
    faulty, clean, d = retried["faulty"], retried["clean"], retried["dir"]
    assert clean.returncode == 0, clean.stderr[-4000:]
    assert faulty.returncode == 0, faulty.stderr[-4000:]
    # the faults did fire, in both stages, and Spark retried the tasks
    for stage in ("corpus", "similar"):
        assert f"injected failure in stage '{stage}' (first attempt)" in faulty.stderr
    assert "injected failure" not in clean.stderr
    run = run_of(d / "faulty", "2026-01-08")
    assert (run / "_SUCCESS").exists()
    assert read_sorted(run) == read_sorted(run_of(d / "clean", "2026-01-08"))


# -- 3. concurrency --------------------------------------------------------------------------
def _publisher(out: Path, run_id: str) -> Publisher:
    return Publisher(Storage(None, str(out)), run_date=dt.date(2026, 1, 8), run_id=run_id,
                     lease_minutes=15)


def test_second_lease_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    a, b = _publisher(out, "run-a"), _publisher(out, "run-b")
    with a:
        with pytest.raises(PublishConflict, match=rf"^output {out} is leased by run run-a "
                                                  rf"\(pid {os.getpid()} on host "):
            b.__enter__()
        assert json.loads((out / publish.LOCK).read_text())["run_id"] == "run-a"
    with b:  # free again once the holder is done
        assert json.loads((out / publish.LOCK).read_text())["run_id"] == "run-b"
    assert not (out / publish.LOCK).exists()


def test_two_runs_race_the_loser_exits_naming_the_holder(spark, log, tmp_path, monkeypatch,
                                                         capsys):
    """Winner: main() in a thread of this process. Loser: ./spark-submit.sh, started while the
    winner holds the lease. The winner's publish step waits until the loser has finished, so
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
            assert winner.is_alive() and time.monotonic() < deadline, "winner never leased"
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
    assert line.startswith(f"item2vec: error: output {out} is leased by run "
                           f"{holder['run_id']} (pid {os.getpid()} on host "), line
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(rf"renewed at {stamp}, expires at {stamp}\); it may still be running",
                     line), line
    assert result["code"] == 0, capsys.readouterr().err
    run = run_of(out, "2026-01-09")
    assert (out / "LATEST").read_text().strip() == f"dt=2026-01-09/{run.name}"
    assert manifest(run)["run_id"] == holder["run_id"]
    assert (run / "_SUCCESS").exists()
    tables = read_sorted(run)
    assert len(tables["vocabulary"]) == len(tables["item_vectors"]) == 8
    assert len(tables["similar_items"]) == 8 * 3
    assert not (out / publish.LOCK).exists()
    assert [p.name for p in (out / "dt=2026-01-09").iterdir() if p.name != "CURRENT"] == \
        [run.name]  # the loser wrote nothing
