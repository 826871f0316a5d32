"""Publishing without renames, leases, pruning and the metric history (item2vec.publish).

Most tests run without Spark: ``Storage(None, root)`` works on local disk, and
``ObjectStore`` below behaves like S3/GCS where it matters: a rename copies file by file (and
can be killed in the middle), create-if-absent is check-then-write (not atomic), and a write
replaces a whole object at once. It counts every storage operation, can "kill" the run at the
n-th one (from then on every operation of that run fails, as if the process were gone) and runs
a reader after each operation, so the tests below check what a reader following LATEST sees at
every step of a publish, and what a kill at any step leaves behind.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec import publish, reader
from item2vec.errors import BadInput, PublishConflict
from item2vec.publish import HISTORY_SCHEMA, Publisher, history_rows
from item2vec.storage import Storage, StorageError

D1, D2 = dt.date(2026, 1, 10), dt.date(2026, 1, 11)
TABLES = ("vocabulary", "item_vectors", "similar_items")


class Killed(BaseException):
    """The process running the publish died (SIGKILL): nothing after it runs."""


class ObjectStore(Storage):
    """Local files with object-store semantics; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(None, str(root))
        self.atomic_create = False  # check-then-write, like a store without conditional PUTs
        self.put_replaces = True
        self.ops = 0
        self.renames = 0
        self.kill_at: int | None = None
        self.observer: Callable[[], None] | None = None
        self.between_check_and_create: Callable[[], None] | None = None

    def _tick(self) -> None:
        if self.kill_at is not None and self.ops >= self.kill_at:
            raise Killed()
        self.ops += 1

    def _after(self) -> None:
        if self.observer is not None:
            self.observer()

    def _wrap(name: str) -> Callable:  # a decorator factory, used in the class body
        def method(self: ObjectStore, *args, **kwargs):
            self._tick()
            result = getattr(Storage, name)(self, *args, **kwargs)
            self._after()
            return result
        method.__name__ = name
        return method

    exists = _wrap("exists")
    is_dir = _wrap("is_dir")
    listdir = _wrap("listdir")
    list_files = _wrap("list_files")
    read_bytes = _wrap("read_bytes")
    delete = _wrap("delete")
    write_bytes = _wrap("write_bytes")  # one PUT: the object appears whole
    mkdirs = _wrap("mkdirs")

    def create_exclusive(self, path: str, data: bytes | str) -> bool:
        self._tick()
        if Storage.exists(self, path):
            return False
        if self.between_check_and_create is not None:
            self.between_check_and_create()
        Storage.write_bytes(self, path, data.encode() if isinstance(data, str) else data)
        self._after()
        return True

    def rename(self, src: str, dst: str) -> None:
        """A directory "rename" on an object store: copy each file, then delete the source."""
        self.renames += 1
        for rel in Storage.list_files(self, src):
            self._tick()
            Storage.write_bytes(self, f"{dst}/{rel}", Path(src, rel).read_bytes())
            self._after()
        self._tick()
        Storage.delete(self, src)
        self._after()


# -- helpers ---------------------------------------------------------------------------------
def publisher(store: Storage, run_date: dt.date, run_id: str, notes: list | None = None,
              lease_minutes: float = 10.0) -> Publisher:
    return Publisher(store, run_date=run_date, run_id=run_id, lease_minutes=lease_minutes,
                     notice=(notes if notes is not None else []).append, settle_seconds=0.01)


def write_run(pub: Publisher, items: int) -> dict:
    """Three tables of ``items`` rows, two part files each (like Spark), then a manifest."""
    for name in TABLES:
        table = pa.table({"item_id": [f"i{i}" for i in range(items)],
                          "item_index": pa.array(range(items), pa.int32())})
        for part, piece in enumerate((table.slice(0, items // 2), table.slice(items // 2))):
            pub.check()
            buf = io.BytesIO()
            pq.write_table(piece, buf)
            pub.store.write_bytes(f"{pub.location}/{name}/part-{part:05d}.parquet",
                                  buf.getvalue())
    pub.write_json("metrics.json", {"items": items})
    return {"run_date": pub.run_date.isoformat(), "counts": {"vocabulary_size": items}}


def full_run(store: Storage, run_date: dt.date, run_id: str, items: int,
             notes: list | None = None, retention_days: int = 0) -> Publisher:
    pub = publisher(store, run_date, run_id, notes)
    pub.check_output()
    with pub:
        pub.clean_leftovers()
        pub.publish(write_run(pub, items))
        pub.prune(retention_days)
    return pub


def read_latest(out: Path) -> tuple[str, int]:
    """What a consumer sees: (run_id, rows) of the run LATEST names, checked for completeness."""
    run = reader.latest_run(out)
    manifest = reader.read_run_manifest(run)
    assert manifest["status"] == "published"
    rows = manifest["counts"]["vocabulary_size"]
    for name in TABLES:
        assert reader.read_table(run, name).num_rows == rows, (run, name)
    return manifest["run_id"], rows


def runs_on_disk(out: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in out.glob("dt=*/run=*")}


def expire_lease(out: Path) -> dict:
    """What the passing of time does to the lease of a run that died."""
    lease = json.loads((out / publish.LOCK).read_text())
    lease["expires_at"] = "2000-01-01T00:00:00.000Z"
    (out / publish.LOCK).write_text(json.dumps(lease))
    return lease


def lease_file(out: Path, *, run_id: str, host: str, expires: dt.datetime,
               pid: int = 4242, pid_ns: str | None = None) -> dict:
    record = {"run_id": run_id, "host": host, "pid": pid, "pid_started": None, "pid_ns": pid_ns,
              "acquired_at": "2026-01-10T02:00:00.000Z", "renewed_at": "2026-01-10T02:05:00.000Z",
              "expires_at": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    out.mkdir(parents=True, exist_ok=True)
    (out / publish.LOCK).write_text(json.dumps(record))
    return record


def utc(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(**delta)


# -- layout ----------------------------------------------------------------------------------
def test_a_run_is_written_in_place_and_the_pointers_name_it(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    pub = full_run(store, D1, "r1", items=6)
    run = out / "dt=2026-01-10" / "run=r1"
    assert (out / "LATEST").read_text() == "dt=2026-01-10/run=r1\n"
    assert (out / "dt=2026-01-10" / "CURRENT").read_text() == "run=r1\n"
    assert sorted(p.name for p in run.iterdir()) == [
        "_SUCCESS", "item_vectors", "manifest.json", "metrics.json", "similar_items",
        "vocabulary"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "published" and manifest["run_id"] == "r1"
    assert manifest["finished_at"].endswith("Z")
    assert sorted(p.name for p in out.iterdir()) == ["LATEST", "dt=2026-01-10"]  # lease released
    assert store.renames == 0  # nothing is ever renamed
    assert pub.dataset_uri("similar_items") == f"file://{run}/similar_items"  # '=' unescaped
    assert reader.latest_run(out) == str(run)
    assert reader.run_for_date(out, "2026-01-10") == str(run)
    assert read_latest(out) == ("r1", 6)


def test_a_reader_following_latest_never_sees_a_partial_run(tmp_path):
    """After every single storage operation of four runs - the first, a re-run of the date
    LATEST names, a newer date, a backfill of an older date - a reader following LATEST sees
    a complete run: the previous one until the pointers move, then the new one."""
    out = tmp_path / "out"
    store = ObjectStore(out)
    seen: list[tuple[str, int]] = []

    def observe() -> None:
        if (out / "LATEST").exists():
            seen.append(read_latest(out))

    store.observer = observe
    full_run(store, D1, "r1", items=4)
    full_run(store, D1, "r2", items=6)  # re-run of the date LATEST names
    full_run(store, D2, "r3", items=8)
    full_run(store, dt.date(2026, 1, 5), "r0", items=2)  # backfill: LATEST stays on r3
    runs = [run for run, _ in seen]
    assert len(seen) > 60 and store.renames == 0
    assert set(seen) == {("r1", 4), ("r2", 6), ("r3", 8)}
    # LATEST moved exactly three times and never back
    assert [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r] == ["r1", "r2", "r3"]
    assert (out / "dt=2026-01-05" / "CURRENT").read_text() == "run=r0\n"


def rerun_with_kill(template: Path, out: Path, kill_at: int | None) -> ObjectStore:
    """Copy an output holding run r1 of D1, then re-run D1 as r2, killed at operation n."""
    shutil.copytree(template, out)
    store = ObjectStore(out)
    store.kill_at = kill_at
    store.observer = lambda: read_latest(out)
    pub = publisher(store, D1, "r2")
    try:
        with pub:
            pub.clean_leftovers()
            pub.publish(write_run(pub, items=6))
            pub.prune(0)
    except Killed:
        pub._lease.stop_renewing()  # the renewal thread died with the process
    return store


def test_a_kill_at_any_point_leaves_latest_complete_and_the_next_run_cleans_up(tmp_path):
    template = tmp_path / "template"
    full_run(ObjectStore(template), D1, "r1", items=4)
    total = rerun_with_kill(template, tmp_path / "dry", None).ops
    assert total > 20
    outcomes = set()
    for kill_at in range(total):
        out = tmp_path / f"k{kill_at}"
        rerun_with_kill(template, out, kill_at)
        outcomes.add(read_latest(out))  # old or new run, complete either way
        if (out / publish.LOCK).exists():
            dead = expire_lease(out)
            assert dead["run_id"] == "r2"
        notes: list[str] = []
        nxt = full_run(ObjectStore(out), D1, "r3", items=8, notes=notes)
        assert read_latest(out) == ("r3", 8)
        if dead_lease := [n for n in notes if "stale" in n]:
            assert dead_lease == [f"the lease of run r2 on {socket.gethostname()} is stale "
                                  "(expired at 2000-01-01T00:00:00.000Z); taking over"]
        # every run directory left is complete and either published or kept one run longer
        # for readers that resolved a pointer just before it moved
        for run in runs_on_disk(out):
            assert (out / run / "_SUCCESS").exists(), (kill_at, run)
            assert run == "dt=2026-01-10/run=r3" or run in nxt._keep, (kill_at, run)
        assert not list(out.rglob("*.tmp-*")) and not (out / publish.LOCK).exists()
    assert outcomes == {("r1", 4), ("r2", 6)}


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    full_run(store, D1, "r1", items=4)
    (out / "dt=2026-01-11" / "run=killed" / "vocabulary").mkdir(parents=True)
    (out / "dt=2026-01-10" / "run=killed2" / "item_vectors").mkdir(parents=True)
    (out / "dt=2026-01-10" / "CURRENT.tmp-1234abcd").write_text("run=x")
    (out / "_staging" / "old-run" / "vocabulary").mkdir(parents=True)  # older versions
    (out / "_trash").mkdir()
    pub = publisher(store, D2, "r2")
    with pub:
        removed = pub.clean_leftovers()
    assert sorted(removed) == ["_staging/old-run", "dt=2026-01-10/CURRENT.tmp-1234abcd",
                               "dt=2026-01-10/run=killed2", "dt=2026-01-11/run=killed"]
    assert sorted(p.name for p in out.iterdir()) == ["LATEST", "dt=2026-01-10"]
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r1"}


def test_an_exception_removes_the_unpublished_run_and_releases_the_lease(tmp_path):
    out = tmp_path / "out"
    full_run(ObjectStore(out), D1, "r1", items=4)
    pub = publisher(ObjectStore(out), D2, "r2")
    with pytest.raises(BadInput, match="no sessions"), pub:
        write_run(pub, items=4)
        raise BadInput("no sessions")
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r1"}
    assert sorted(p.name for p in out.iterdir()) == ["LATEST", "dt=2026-01-10"]


# -- rejected runs, pruning, retention -------------------------------------------------------
def test_a_rejected_run_stays_inspectable_and_unpublished(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    full_run(store, D1, "r1", items=4)
    pub = publisher(store, D2, "bad")
    with pub:
        where = pub.reject(write_run(pub, items=5))
    run = out / "dt=2026-01-11" / "run=bad"
    assert where == str(run)
    assert json.loads((run / "manifest.json").read_text())["status"] == "rejected"
    assert not (run / "_SUCCESS").exists() and not (out / "dt=2026-01-11" / "CURRENT").exists()
    kept = out / "_rejected" / "dt=2026-01-11-bad"
    assert json.loads((kept / "manifest.json").read_text())["status"] == "rejected"
    assert (kept / "RUN").read_text() == "dt=2026-01-11/run=bad\n"
    assert read_latest(out) == ("r1", 4)
    with pytest.raises(FileNotFoundError, match="no _SUCCESS"):
        reader.check_run_dir(run)
    with pytest.raises(FileNotFoundError, match="no run published for 2026-01-11"):
        reader.run_for_date(out, D2)
    # later runs keep it (a pointer names it) until retention drops its date
    full_run(store, D2, "good", items=4)
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r1", "dt=2026-01-11/run=bad",
                                 "dt=2026-01-11/run=good"}
    full_run(store, dt.date(2026, 1, 20), "later", items=4, retention_days=5)
    # the run LATEST named a moment ago stays one run longer, the rest of the old dates goes
    assert runs_on_disk(out) == {"dt=2026-01-11/run=good", "dt=2026-01-20/run=later"}
    assert list((out / "_rejected").iterdir()) == []
    full_run(store, dt.date(2026, 1, 21), "next", items=4, retention_days=5)
    assert runs_on_disk(out) == {"dt=2026-01-20/run=later", "dt=2026-01-21/run=next"}


def test_superseded_runs_are_pruned_one_run_later(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    full_run(store, D1, "r1", items=4)
    full_run(store, D1, "r2", items=4)  # re-run: r1 stays for readers that just resolved it
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r1", "dt=2026-01-10/run=r2"}
    pub = full_run(store, D2, "r3", items=4)
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r2", "dt=2026-01-11/run=r3"}
    assert pub._keep == {"dt=2026-01-10/run=r2"}
    pub = full_run(store, D1, "r4", items=4)  # backfill of an older date: LATEST stays on r3
    assert pub.previous().pointer == "dt=2026-01-11/run=r3"
    assert (out / "LATEST").read_text() == "dt=2026-01-11/run=r3\n"
    assert (out / "dt=2026-01-10" / "CURRENT").read_text() == "run=r4\n"
    assert reader.run_for_date(out, D1).endswith("run=r4")
    full_run(store, D2, "r5", items=4)
    assert runs_on_disk(out) == {"dt=2026-01-10/run=r4", "dt=2026-01-11/run=r3",
                                 "dt=2026-01-11/run=r5"}


def test_retention_spares_the_date_latest_named_until_the_next_run(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    for day, run_id in ((1, "a"), (2, "b"), (19, "c")):
        full_run(store, dt.date(2026, 1, day), run_id, items=2)
    (out / "LATEST").write_text("dt=2026-01-01/run=a\n")  # e.g. rolled back by an operator
    (out / "dt=2026-01-03-notes").mkdir()  # not a partition name: never touched
    pub = full_run(store, dt.date(2026, 1, 20), "d", items=2, retention_days=5)
    assert sorted(p.name for p in out.iterdir()) == [
        "LATEST", "dt=2026-01-01", "dt=2026-01-03-notes", "dt=2026-01-19", "dt=2026-01-20"]
    assert pub._keep == {"dt=2026-01-01/run=a"}  # what LATEST named a moment ago
    assert pub.previous().pointer == "dt=2026-01-20/run=d"


def test_outputs_of_older_versions_are_taken_over(tmp_path):
    """dt=... partitions with the datasets directly inside, LATEST holding "dt=...", and the
    _staging/_trash areas of a run killed between its two renames."""
    out = tmp_path / "out"
    for day in ("2026-01-09", "2026-01-10"):
        (out / f"dt={day}" / "vocabulary").mkdir(parents=True)
        (out / f"dt={day}" / "manifest.json").write_text(json.dumps({"run_id": f"old-{day}"}))
        (out / f"dt={day}" / "_SUCCESS").touch()
    (out / "LATEST").write_text("dt=2026-01-10\n")
    (out / "_trash").mkdir()
    (out / "dt=2026-01-09").rename(out / "_trash" / "killed-dt=2026-01-09")
    (out / "_staging" / "killed").mkdir(parents=True)
    store = ObjectStore(out)
    pub = publisher(store, D1, "new")
    with pub:
        removed = pub.clean_leftovers()
        assert pub.previous().pointer == "dt=2026-01-10"
        assert pub.previous().manifest == {"run_id": "old-2026-01-10"}
        pub.publish(write_run(pub, items=4))
        assert pub.prune(0) == []  # the old files of dt=2026-01-10 stay one run longer
    assert removed == ["_trash/killed-dt=2026-01-09 (restored as dt=2026-01-09)",
                       "_staging/killed"]
    assert (out / "dt=2026-01-09" / "_SUCCESS").exists()
    assert not (out / "_staging").exists() and not (out / "_trash").exists()
    assert read_latest(out) == ("new", 4)
    pub = full_run(store, D2, "next", items=4)
    assert sorted(p.name for p in (out / "dt=2026-01-10").iterdir()) == ["CURRENT", "run=new"]


# -- leases ----------------------------------------------------------------------------------
def test_the_lease_records_its_holder_and_is_renewed(tmp_path):
    out = tmp_path / "out"
    pub = publisher(Storage(None, str(out)), D1, "r1", lease_minutes=0.01)  # renewed every 0.12 s
    with pub:
        first = json.loads((out / publish.LOCK).read_text())
        time.sleep(0.5)
        later = json.loads((out / publish.LOCK).read_text())
        pub.publish(write_run(pub, items=2))
    assert set(first) == {"run_id", "host", "pid", "pid_started", "pid_ns", "acquired_at",
                          "renewed_at", "expires_at"}
    assert (first["run_id"], first["host"], first["pid"]) == ("r1", socket.gethostname(),
                                                             os.getpid())
    assert later["acquired_at"] == first["acquired_at"]
    assert later["renewed_at"] > first["renewed_at"] and later["expires_at"] > first["expires_at"]
    lasts = dt.datetime.fromisoformat(later["expires_at"].replace("Z", "+00:00")) - \
        dt.datetime.fromisoformat(later["renewed_at"].replace("Z", "+00:00"))
    assert abs(lasts.total_seconds() - 0.6) <= 0.002
    assert not (out / publish.LOCK).exists()


def test_a_live_lease_of_another_host_is_respected(tmp_path):
    out = tmp_path / "out"
    holder = lease_file(out, run_id="night-1", host="worker-17", expires=utc(minutes=9))
    before = (out / publish.LOCK).read_text()
    pub = publisher(Storage(None, str(out)), D1, "r2")
    with pytest.raises(PublishConflict) as err, pub:
        pass
    assert str(err.value) == (
        f"output {out} is leased by run night-1 (pid 4242 on host worker-17, renewed at "
        f"2026-01-10T02:05:00.000Z, expires at {holder['expires_at']}); it may still be "
        f"running: wait for it, or if it died, run again after {holder['expires_at']}")
    assert err.value.exit_code == 1
    assert (out / publish.LOCK).read_text() == before


def test_an_expired_lease_of_another_host_is_taken_over_with_a_notice(tmp_path):
    out = tmp_path / "out"
    holder = lease_file(out, run_id="night-1", host="worker-17", expires=utc(minutes=-1))
    notes: list[str] = []
    full_run(Storage(None, str(out)), D1, "r2", items=2, notes=notes)
    assert notes == [f"the lease of run night-1 on worker-17 is stale (expired at "
                     f"{holder['expires_at']}); taking over"]
    assert read_latest(out) == ("r2", 2)
    assert not (out / publish.LOCK).exists()


def test_a_dead_driver_on_this_host_releases_its_lease_at_once(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: the pid no longer exists
    # same host name, other PID namespace (a container sharing the host's name): the pid
    # says nothing, so the live lease is respected
    lease_file(out, run_id="crashed", host=socket.gethostname(), expires=utc(minutes=9),
               pid=child.pid, pid_ns="pid:[1]")
    with pytest.raises(PublishConflict, match="is leased by run crashed"), \
            publisher(Storage(None, str(out)), D1, "r2"):
        pass
    lease_file(out, run_id="crashed", host=socket.gethostname(), expires=utc(minutes=9),
               pid=child.pid, pid_ns=publish._pid_namespace())
    notes: list[str] = []
    full_run(Storage(None, str(out)), D1, "r2", items=2, notes=notes)
    assert notes == [f"the lease of run crashed on {socket.gethostname()} is stale "
                     f"(its process {child.pid} on this host is gone); taking over"]


def test_a_run_whose_lease_was_taken_over_fails_before_publishing(tmp_path):
    out = tmp_path / "out"
    full_run(Storage(None, str(out)), D1, "r1", items=2)
    pub = publisher(Storage(None, str(out)), D2, "slow", lease_minutes=0.01)
    with pytest.raises(PublishConflict) as err, pub:
        manifest = write_run(pub, items=3)
        other = lease_file(out, run_id="other", host="worker-3", expires=utc(minutes=5))
        time.sleep(0.4)  # the renewal notices
        pub.publish(manifest)
    assert str(err.value).startswith(
        f"the lease of output {out} was taken over by run other (pid 4242 on host worker-3")
    assert str(err.value).endswith("; this run stops without publishing")
    assert json.loads((out / publish.LOCK).read_text()) == other  # not released by the loser
    assert read_latest(out) == ("r1", 2)
    assert (out / "dt=2026-01-11" / "run=slow").exists()  # the lease holder cleans it up


def test_a_stalled_driver_whose_lease_expired_does_not_publish(tmp_path):
    out = tmp_path / "out"
    pub = publisher(Storage(None, str(out)), D1, "stalled", lease_minutes=0.005)  # 0.3 s
    with pytest.raises(PublishConflict, match=r"expired at .* before it could be renewed"), pub:
        manifest = write_run(pub, items=2)
        pub._lease.stop_renewing()  # a long GC pause: nothing runs
        time.sleep(0.4)
        pub.publish(manifest)
    assert not (out / "LATEST").exists()


@pytest.mark.parametrize("other_lands", ["before", "after"])
def test_two_runs_creating_the_lease_at_once_on_a_store_without_atomic_create(tmp_path,
                                                                              other_lands):
    """Create-if-absent is check-then-write here, so both runs "create" the lease; whoever
    wrote last owns it, and reading it back after a pause tells the other, which stops."""
    out = tmp_path / "out"
    store = ObjectStore(out)
    pub = publisher(store, D1, "r1")

    def other_run_writes() -> None:
        store.between_check_and_create = store.observer = None
        lease_file(out, run_id="other", host="worker-2", expires=utc(minutes=5))

    if other_lands == "before":  # between our check and our write: ours lands last
        store.between_check_and_create = other_run_writes
        with pub:
            assert json.loads((out / publish.LOCK).read_text())["run_id"] == "r1"
        assert not (out / publish.LOCK).exists()
    else:  # right after our write: theirs lands last
        store.observer = other_run_writes
        with pytest.raises(PublishConflict, match=r"^output .* was leased at the same time by "
                                                  r"run other \(pid 4242 on host worker-2"), pub:
            pass
        assert json.loads((out / publish.LOCK).read_text())["run_id"] == "other"


# -- storage errors surface as themselves -----------------------------------------------------
def test_storage_errors_are_reported_as_what_they_are(tmp_path):
    (tmp_path / "blocker").write_text("a file where the output's parent should be")
    store = Storage(None, str(tmp_path / "blocker" / "out"))
    pub = publisher(store, D1, "r1")
    with pytest.raises(StorageError) as err, pub:
        pass
    assert str(err.value).startswith(f"cannot create {tmp_path}/blocker/out/_LOCK: "
                                     "NotADirectoryError: ")
    assert err.value.exit_code == 1 and "locked" not in str(err.value)
    with pytest.raises(BadInput, match=r"--output .*/blocker/out is not writable: "
                                       r"NotADirectoryError"):
        pub.check_output()


def test_a_failing_store_is_not_bad_input(tmp_path):
    class Unreachable(Storage):
        def mkdirs(self, path: str) -> None:
            raise StorageError(f"cannot create directory {path}: ConnectException: Connection "
                               "refused", kind="io")

        def create_exclusive(self, path: str, data: bytes | str) -> bool:
            raise StorageError(f"cannot create {path}: ConnectException: Connection refused")

    pub = publisher(Unreachable(None, str(tmp_path / "out")), D1, "r1")
    with pytest.raises(StorageError, match="ConnectException: Connection refused"):
        pub.check_output()
    with pytest.raises(StorageError, match="ConnectException"), pub:
        pass


# -- metric history ----------------------------------------------------------------------------
MANIFEST = {"run_date": "2026-01-10", "run_id": "r1", "finished_at": "2026-01-11T02:10:00Z",
            "status": "published",
            "metrics": {"method": "previous_run", "evaluated_run": "dt=2026-01-09/run=r0",
                        "pairs": 900,
                        "models": {"published": {"hr@10": 0.31, "mrr@10": 0.12,
                                                 "ndcg@10": 0.17, "hr@20": 0.4,
                                                 "coverage@10": 0.5},
                                   "popularity": {"hr@10": 0.05, "pairs": 800}}}}


def test_history_rows_from_a_manifest():
    rows = history_rows(MANIFEST)
    assert [r["model"] for r in rows] == ["popularity", "published"]
    assert rows[1] == {"run_date": "2026-01-10", "run_id": "r1",
                       "finished_at": "2026-01-11T02:10:00Z", "status": "published",
                       "method": "previous_run", "evaluated_run": "dt=2026-01-09/run=r0",
                       "model": "published", "pairs": 900, "hr_10": 0.31, "mrr_10": 0.12,
                       "ndcg_10": 0.17, "hr_20": 0.4, "mrr_20": None, "ndcg_20": None,
                       "coverage_10": 0.5, "coverage_20": None}
    assert rows[0]["pairs"] == 800 and rows[0]["mrr_10"] is None


def test_metric_history_is_one_parquet_file_per_run_readable_as_a_dataset(tmp_path):
    out = tmp_path / "out"
    store = ObjectStore(out)
    assert publisher(store, D1, "x").history() == HISTORY_SCHEMA.empty_table()
    first = publisher(store, D1, "r1")
    with first:
        first.publish(write_run(first, items=2))
        first.append_history(history_rows(MANIFEST))
    second = publisher(store, D2, "r2")
    with second:
        second.reject(write_run(second, items=2))
        second.append_history([{"status": "rejected", "method": "holdout",
                                "model": "published", "pairs": 50, "hr_10": 0.01}])
        with pytest.raises(ValueError, match=r"unknown columns \['hr@10'\]"):
            second.append_history([{"hr@10": 0.1}])
    history = second.history()
    assert history.schema == HISTORY_SCHEMA
    assert history.select(["run_date", "run_id", "status", "model", "pairs", "hr_10"]
                          ).to_pylist() == [
        {"run_date": "2026-01-10", "run_id": "r1", "status": "published", "model": "popularity",
         "pairs": 800, "hr_10": 0.05},
        {"run_date": "2026-01-10", "run_id": "r1", "status": "published", "model": "published",
         "pairs": 900, "hr_10": 0.31},
        {"run_date": "2026-01-11", "run_id": "r2", "status": "rejected", "model": "published",
         "pairs": 50, "hr_10": 0.01}]
    assert sorted(p.name for p in (out / "_metrics").iterdir()) == [
        "2026-01-10_r1.parquet", "2026-01-11_r2.parquet"]
    # what a dashboard does: the directory as one Parquet dataset, without item2vec
    table = ds.dataset(out / "_metrics", format="parquet").to_table()
    assert table.schema == HISTORY_SCHEMA and table.num_rows == 3
    assert reader.read_history(out).column("hr_10").to_pylist() == [0.05, 0.31, 0.01]
    duckdb = pytest.importorskip("duckdb")
    got = duckdb.sql(f"SELECT run_id, model, hr_10 FROM read_parquet('{out}/_metrics/*.parquet') "
                     "WHERE status = 'published' ORDER BY model").fetchall()
    assert got == [("r1", "popularity", 0.05), ("r1", "published", 0.31)]


# -- with Spark --------------------------------------------------------------------------------
@pytest.mark.parametrize("hadoop", [False, True], ids=["local", "hadoop-fs"])
def test_spark_datasets_and_a_full_publish(spark, tmp_path, hadoop):
    """The same publish through the OS and through Hadoop's FileSystem (the object-store
    code path), with datasets written and read back by Spark."""
    out = tmp_path / "out"
    store = Storage(spark, str(out), hadoop=hadoop)
    notes: list[str] = []
    for run_id, run_date in (("r1", D1), ("r2", D1)):
        pub = publisher(store, run_date, run_id, notes)
        pub.check_output()
        with pub:
            assert pub.clean_leftovers() == []
            frame = spark.createDataFrame([("a", 0), ("b", 1)], "item_id string, item_index int")
            pub.write_datasets(dict.fromkeys(TABLES, frame))
            assert sorted(pub.read_dataset(spark, "vocabulary").collect()) == \
                sorted(frame.collect())
            pub.write_json("metrics.json", {"x": 1})
            where = pub.publish({"run_date": run_date.isoformat(),
                                 "counts": {"vocabulary_size": 2}})
            pub.append_history([{"method": "holdout", "status": "published",
                                 "model": "published", "pairs": 3, "hr_10": 0.5}])
            pub.prune(0)
    assert where == store.join("dt=2026-01-10", "run=r2")
    assert (out / "LATEST").read_text() == "dt=2026-01-10/run=r2\n"
    assert read_latest(out) == ("r2", 2)
    assert pub.history().num_rows == 2 and notes == []
    assert not (out / publish.LOCK).exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
