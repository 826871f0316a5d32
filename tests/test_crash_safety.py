"""Crash safety: a run SIGKILLed while writing leaves the published run intact and readable.

A first run is published (in-process). A second run, through ./spark-submit.sh in its own
process group, is killed (SIGKILL to the whole group: JVM and Python driver) as soon as it
writes under its run directory ``dt=…/run=<run_id>/``. LATEST must still name the first run,
which must be complete; the killed run's lease must be recognised as stale (same host, process
gone); a third run must take the lease over, clean up and publish. Leases left on another host
expire: taken over once expired, respected until then.

Runs the job through main() and ./spark-submit.sh (the wiring in jobs/run.py and
item2vec/pipeline.py); the storage-level guarantees are pinned Spark-free in test_publish.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec import publish
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


def assert_complete(out: Path, pointer: str) -> dict:
    """What a reader following LATEST relies on: _SUCCESS, manifest, readable datasets."""
    run = out / pointer
    assert (run / "_SUCCESS").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["run_date"] == pointer.split("/")[0].removeprefix("dt=")
    assert pointer.split("/")[1] == f"run={manifest['run_id']}"
    tables = {n: ds.dataset(str(run / n), format="parquet").to_table() for n in DATASETS}
    v = manifest["counts"]["vocabulary_size"]
    assert tables["vocabulary"].num_rows == tables["item_vectors"].num_rows == v
    assert tables["similar_items"].num_rows == manifest["counts"]["similar_rows"]
    names = {p.name for p in run.iterdir()}
    assert {*DATASETS, "_SUCCESS", "manifest.json"} <= names, names
    return manifest


def follow_latest(out: Path) -> dict:
    return assert_complete(out, (out / "LATEST").read_text().strip())


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
    first_pointer = (out / "LATEST").read_text().strip()
    first_manifest = follow_latest(out)
    first_files = sorted(str(p.relative_to(out)) for p in (out / first_pointer).rglob("*"))

    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g"}
    cmd = [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "--input", log,
           "--output", str(out), "--run-date", SECOND, *TINY]
    log_file = (d / "second.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            start_new_session=True)  # own process group: JVM + Python driver
    lease_seen: dict | None = None
    reads_while_running = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (d / "second.log").read_text()
            if lease_seen is None and (out / publish.LOCK).exists():
                lease_seen = json.loads((out / publish.LOCK).read_text())
            # a reader following LATEST meanwhile always sees the first, complete run
            assert follow_latest(out)["run_id"] == first_manifest["run_id"]
            reads_while_running += 1
            written = [p for p in (out / f"dt={SECOND}").glob("run=*/**/*") if p.is_file()]
            if written:
                break
            time.sleep(0.2)
        else:
            pytest.fail("second run never wrote under its run directory:\n"
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
    return {"out": out, "log": log, "first": first_manifest, "first_pointer": first_pointer,
            "first_files": first_files, "lease_seen": lease_seen, "group": group,
            "reads": reads_while_running, "written": written}


def test_latest_still_names_the_complete_first_run(crashed):
    out = crashed["out"]
    assert (out / "LATEST").read_text().strip() == crashed["first_pointer"]
    assert crashed["first_pointer"].startswith(f"dt={FIRST}/run=")
    manifest = follow_latest(out)
    assert manifest["run_id"] == crashed["first"]["run_id"]
    files = sorted(str(p.relative_to(out)) for p in (out / crashed["first_pointer"]).rglob("*"))
    assert files == crashed["first_files"]
    # the killed run got as far as writing into its run directory, which no pointer names and
    # which is not complete
    assert crashed["reads"] >= 1 and crashed["written"]
    (killed,) = (out / f"dt={SECOND}").glob("run=*")
    assert killed.name == f"run={crashed['lease_seen']['run_id']}"
    assert not (killed / "_SUCCESS").exists() and not (out / f"dt={SECOND}" / "CURRENT").exists()


def test_lease_left_by_the_killed_run_is_stale(crashed):
    out = crashed["out"]
    holder = json.loads((out / publish.LOCK).read_text())
    assert holder["run_id"] == crashed["lease_seen"]["run_id"]
    assert set(holder) == {"run_id", "host", "pid", "pid_started", "pid_ns", "acquired_at",
                           "renewed_at", "expires_at"}
    assert holder["host"] == socket.gethostname()
    # The lease names the process that ran the job (spark-submit's Python driver, a child of
    # the JVM) and that process died with its process group.
    assert holder["pid"] in crashed["group"]
    assert isinstance(holder["pid_started"], int)
    # dead: gone, or a zombie that PID 1 has not reaped yet (os.kill(pid, 0) still succeeds)
    assert pid_state(holder["pid"]) in (None, "Z")
    # not expired yet (15 minutes by default), but on this host a dead holder is stale at once
    assert publish._stale_reason(holder, time.time()) == \
        f"its process {holder['pid']} on this host is gone"


def test_third_run_takes_over_cleans_up_and_publishes(crashed, capsys):
    out = crashed["out"]
    killed = crashed["lease_seen"]["run_id"]
    capsys.readouterr()
    code = main(["--input", crashed["log"], "--output", str(out), "--run-date", SECOND, *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"the lease of run {killed} on {socket.gethostname()} is stale" in err
    assert f"removed leftovers of interrupted runs: dt={SECOND}/run={killed}" in err
    assert not (out / f"dt={SECOND}" / f"run={killed}").exists()
    assert not (out / publish.LOCK).exists()
    pointer = (out / "LATEST").read_text().strip()
    assert pointer.startswith(f"dt={SECOND}/run=") and killed not in pointer
    assert follow_latest(out)["run_id"] != crashed["first"]["run_id"]
    assert assert_complete(out, crashed["first_pointer"])["run_id"] == crashed["first"]["run_id"]


# -- leases left on another host -------------------------------------------------------------
def _lease_of_another_host(out: Path, expires: dt.datetime) -> dict:
    record = {"run_id": "20260111T020000-0ther", "host": "yarn-node-17", "pid": 4242,
              "pid_started": 1, "acquired_at": "2026-01-11T02:00:00.000Z",
              "renewed_at": "2026-01-11T02:30:00.000Z",
              "expires_at": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    out.mkdir(parents=True, exist_ok=True)
    (out / publish.LOCK).write_text(json.dumps(record))
    return record


def test_an_expired_lease_of_a_run_that_died_on_another_host_is_taken_over(spark, tmp_path,
                                                                            capsys):
    """A driver OOM-killed last night on another node: its lease has expired."""
    out = tmp_path / "out"
    dead = _lease_of_another_host(out, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    log = tiny_log(tmp_path / "events.parquet")
    code = main(["--input", log, "--output", str(out), "--run-date", FIRST, *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    notices = [line for line in err.splitlines() if "is stale" in line]
    assert len(notices) == 1 and notices[0].endswith(
        f"the lease of run {dead['run_id']} on yarn-node-17 is stale (expired at "
        f"{dead['expires_at']}); taking over")
    assert follow_latest(out)["run_date"] == FIRST
    assert not (out / publish.LOCK).exists()


def test_a_live_lease_of_another_host_is_respected(spark, tmp_path, capsys):
    out = tmp_path / "out"
    live = _lease_of_another_host(out, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    before = (out / publish.LOCK).read_text()
    log = tiny_log(tmp_path / "events.parquet")
    code = main(["--input", log, "--output", str(out), "--run-date", FIRST, *TINY])
    err = capsys.readouterr().err
    assert code == 1, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("item2vec: error: ")]
    assert line == (f"item2vec: error: output {out} is leased by run {live['run_id']} (pid 4242 "
                    f"on host yarn-node-17, renewed at {live['renewed_at']}, expires at "
                    f"{live['expires_at']}); it may still be running: wait for it, or if it "
                    f"died, run again after {live['expires_at']}")
    assert (out / publish.LOCK).read_text() == before
    assert sorted(p.name for p in out.iterdir()) == [publish.LOCK]  # nothing else touched


def test_stale_lease_detection_handles_zombies_and_reused_pids():
    me = {"host": publish.host_name(), "pid": os.getpid(),
          "pid_started": publish._proc_stat(os.getpid())[1],
          "pid_ns": publish._pid_namespace(), "expires_at": "2099-01-01T00:00:00.000Z"}
    assert not publish._holder_is_dead(me)  # a live holder is never stale
    assert publish._holder_is_dead({**me, "pid_started": me["pid_started"] - 1})  # pid reused
    assert not publish._holder_is_dead({**me, "host": "another-host"})  # the expiry decides
    assert not publish._holder_is_dead({**me, "pid": 2 ** 22 + 1, "pid_ns": "pid:[1]"})
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
