"""Crash safety: a run SIGKILLed while writing leaves the published run intact and readable.

A first run is published (in-process). A second run, through ./spark-submit.sh in its own
process group, is killed (SIGKILL to the whole group: JVM and Python driver) as soon as it
writes under ``_staging/``. LATEST must still name the first partition, which must be complete;
the killed run's lock must be recognised as stale; a third run must clean up and publish.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec import publish
from item2vec.publish import Publisher
from item2vec.storage import Storage
from jobs.run import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIRST, SECOND = "2026-01-10", "2026-01-11"
DAY = dt.datetime(2026, 1, 9, 8, tzinfo=dt.UTC)
TINY = [f"--set={kv}" for kv in (
    "vocabulary.min_count=1", "train.vector_size=8", "train.iterations=1", "corpus.copies=1",
    "corpus.subsample=0", "similar.k=3", "similar.partitions=1", "evaluate.enabled=false",
    "spark.shuffle_partitions=1", "spark.log_level=ERROR")]
DATASETS = ("vocabulary", "item_vectors", "similar_items")


def tiny_log(path: Path) -> str:
    rows: dict[str, list] = {"user_id": [], "item_id": [], "timestamp": []}
    for u in range(20):
        for s in range(2):
            for j in range(4):
                rows["user_id"].append(f"u{u:02d}")
                rows["item_id"].append(f"i{(u + 2 * s + j) % 6}")
                rows["timestamp"].append(DAY + dt.timedelta(hours=3 * s, minutes=u, seconds=30 * j))
    pq.write_table(pa.table(rows), path)
    return str(path)


def assert_complete(out: Path, partition: str) -> dict:
    """What a reader following LATEST relies on: _SUCCESS, manifest, readable datasets."""
    run = out / partition
    assert (run / "_SUCCESS").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["run_date"] == partition.removeprefix("dt=")
    tables = {n: ds.dataset(str(run / n), format="parquet").to_table() for n in DATASETS}
    v = manifest["counts"]["vocabulary_size"]
    assert tables["vocabulary"].num_rows == tables["item_vectors"].num_rows == v
    assert tables["similar_items"].num_rows == manifest["counts"]["similar_rows"]
    names = {p.name for p in run.iterdir()}
    assert names == {*DATASETS, "_SUCCESS", "manifest.json"}, names
    return manifest


def follow_latest(out: Path) -> dict:
    partition = (out / "LATEST").read_text().strip()
    return assert_complete(out, partition)


def pid_state(pid: int) -> str | None:
    """'Z' for a zombie, another letter for a live process, None when there is no such pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None



@pytest.fixture(scope="module")
def crashed(spark, tmp_path_factory):
    """First run published, second run killed mid-write. Returns what the tests inspect."""
    d = tmp_path_factory.mktemp("crash")
    log = tiny_log(d / "events.parquet")
    out = d / "out"
    assert main(["--input", log, "--output", str(out), "--run-date", FIRST, *TINY]) == 0
    first_manifest = follow_latest(out)
    first_files = sorted(str(p.relative_to(out)) for p in (out / f"dt={FIRST}").rglob("*"))

    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g"}
    cmd = [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "--input", log,
           "--output", str(out), "--run-date", SECOND, *TINY]
    log_file = (d / "second.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)  # own process group: JVM + Python driver
    lock_seen: dict | None = None
    reads_while_running = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (d / "second.log").read_text()
            if lock_seen is None and (out / publish.LOCK).exists():
                lock_seen = json.loads((out / publish.LOCK).read_text())
            # a reader following LATEST meanwhile always sees the first, complete run
            assert follow_latest(out)["run_id"] == first_manifest["run_id"]
            reads_while_running += 1
            staged = [p for p in (out / publish.STAGING).rglob("*") if p.is_file()]
            if staged:
                break
            time.sleep(0.2)
        else:
            pytest.fail("second run never wrote under _staging/:\n"
                        + (d / "second.log").read_text())
        group = [int(p) for p in subprocess.run(["pgrep", "-g", str(proc.pid)],
                                                capture_output=True, text=True).stdout.split()]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        log_file.close()
    for _ in range(50):  # let the killed group's processes disappear (or become zombies)
        if all(pid_state(p) in (None, "Z") for p in group):
            break
        time.sleep(0.1)
    return {"out": out, "log": log, "first": first_manifest, "first_files": first_files,
            "lock_seen": lock_seen, "group": group, "reads": reads_while_running,
            "staged": staged}


def test_latest_still_names_the_complete_first_run(crashed):
    out = crashed["out"]
    assert (out / "LATEST").read_text().strip() == f"dt={FIRST}"
    manifest = follow_latest(out)
    assert manifest["run_id"] == crashed["first"]["run_id"]
    files = sorted(str(p.relative_to(out)) for p in (out / f"dt={FIRST}").rglob("*"))
    assert files == crashed["first_files"]
    assert not (out / f"dt={SECOND}").exists()  # nothing partial under a published name
    assert crashed["reads"] >= 1
    # the killed run did get as far as writing its outputs into staging
    assert any(str(p).startswith(str(out / publish.STAGING)) for p in crashed["staged"])


def test_lock_left_by_the_killed_run_is_stale(crashed):
    out = crashed["out"]
    holder = json.loads((out / publish.LOCK).read_text())
    assert holder == crashed["lock_seen"]
    # The lock names the process that ran the job (spark-submit's Python driver, a child of
    # the JVM) and that process died with its process group.
    assert holder["pid"] in crashed["group"]
    assert isinstance(holder["pid_started"], int)
    # dead: gone, or a zombie that PID 1 has not reaped yet (os.kill(pid, 0) still succeeds)
    assert pid_state(holder["pid"]) in (None, "Z")
    assert publish._holder_is_dead(holder)


def test_third_run_cleans_up_and_publishes(crashed, capsys):
    out = crashed["out"]
    assert list((out / publish.STAGING).iterdir())  # the killed run's leftovers
    capsys.readouterr()
    code = main(["--input", crashed["log"], "--output", str(out), "--run-date", SECOND, *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "removed leftovers of interrupted runs: _staging/" in err
    assert list((out / publish.STAGING).iterdir()) == []
    assert not (out / publish.LOCK).exists()
    assert (out / "LATEST").read_text().strip() == f"dt={SECOND}"
    assert follow_latest(out)["run_id"] != crashed["first"]["run_id"]
    assert assert_complete(out, f"dt={FIRST}")["run_id"] == crashed["first"]["run_id"]


def test_kill_between_the_two_renames_of_a_rerun_is_recovered(tmp_path):
    """Re-publishing a date moves the old partition to _trash, then staging into place: a
    kill between the two leaves LATEST naming a missing partition. The next run puts the old
    partition back instead of deleting it with the other leftovers."""
    out = tmp_path / "out"
    store = Storage(None, str(out))
    date = dt.date(2026, 1, 10)
    old = Publisher(store, date, "run-old")
    (out / publish.STAGING / "run-old" / "vocabulary").mkdir(parents=True)
    old.publish({"run_id": "run-old"})
    # the interrupted re-run: staging complete, old partition moved to trash, then SIGKILL
    (out / publish.STAGING / "run-new" / "vocabulary").mkdir(parents=True)
    (out / publish.TRASH).mkdir()
    (out / "dt=2026-01-10").rename(out / publish.TRASH / "run-new-dt=2026-01-10")
    assert not (out / "dt=2026-01-10").exists()

    nxt = Publisher(store, date, "run-next")
    nxt.lock()
    try:
        cleaned = nxt.clean_leftovers()
    finally:
        nxt.unlock()
    assert (out / "LATEST").read_text().strip() == "dt=2026-01-10"
    manifest = json.loads((out / "dt=2026-01-10" / "manifest.json").read_text())
    assert manifest["run_id"] == "run-old" and (out / "dt=2026-01-10" / "_SUCCESS").exists()
    assert "_staging/run-new" in cleaned
    assert list((out / publish.TRASH).iterdir()) == []


def test_stale_lock_detection_handles_zombies_and_reused_pids():
    me = {"host": publish.host_name(), "pid": os.getpid(),
          "pid_started": publish._proc_stat(os.getpid())[1]}
    assert not publish._holder_is_dead(me)  # a live holder is never stale
    assert publish._holder_is_dead({**me, "pid_started": me["pid_started"] - 1})  # pid reused
    assert not publish._holder_is_dead({**me, "host": "another-host"})  # can't tell: not stale
    child = subprocess.Popen(["true"])  # exits at once; not waited for: a zombie
    try:
        for _ in range(100):
            if pid_state(child.pid) == "Z":
                break
            time.sleep(0.05)
        assert pid_state(child.pid) == "Z"
        assert publish._holder_is_dead({**me, "pid": child.pid, "pid_started": None})
    finally:
        child.wait()
    assert publish._holder_is_dead({**me, "pid": child.pid})  # reaped: no such process
