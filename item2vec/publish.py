"""Publishing without renames: a run is written once in its final place, then pointers move.

Layout under the output root::

    _LOCK                               the lease of the run working on this output (JSON)
    dt=YYYY-MM-DD/run=<run_id>/         one run: datasets, metrics.json, report/, manifest.json,
                                        _SUCCESS (written last: the run is complete)
    dt=YYYY-MM-DD/CURRENT               "run=<run_id>": the published run of that date
    LATEST                              "dt=YYYY-MM-DD/run=<run_id>": the newest published run
    _rejected/dt=YYYY-MM-DD-<run_id>/   manifest.json and RUN ("dt=.../run=<run_id>") of a run
                                        that failed the quality gate (its datasets stay in place)
    _metrics/<run_date>_<run_id>.parquet    one row per run and model (HISTORY_SCHEMA)

A run writes its datasets under ``dt=.../run=<run_id>/``, then ``manifest.json``, then
``_SUCCESS``. Only then do the pointers move: ``CURRENT`` of its date, then ``LATEST`` (which only
moves forward). Each pointer is one small object replaced atomically (Storage.write_bytes), so a
reader following LATEST sees the previous complete run or the new complete run, on local disks,
HDFS and object stores alike, also while the date LATEST names is re-run: the old run of that
date stays in place until a later run prunes it.

One run at a time per output holds a lease (``_LOCK``) that it renews from a background thread.
A lease whose holder died, on any host, expires and the next run takes it over.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from item2vec.errors import BadInput, PublishConflict
from item2vec.storage import Storage, StorageError, host_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOCK, LATEST, CURRENT = "_LOCK", "LATEST", "CURRENT"
MANIFEST, SUCCESS, RUN_POINTER = "manifest.json", "_SUCCESS", "RUN"
REJECTED, METRICS = "_rejected", "_metrics"
LEGACY_AREAS = ("_staging", "_trash")  # used by versions that published by renaming
DATASETS = ("vocabulary", "item_vectors", "similar_items")

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_RUN_DIR = re.compile(r"^run=([A-Za-z0-9][A-Za-z0-9._-]*)$")
_POINTER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})(?:/run=[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_TRASHED = re.compile(r"^.+-(dt=\d{4}-\d{2}-\d{2})$")  # legacy _trash/<run_id>-dt=...

HISTORY_SCHEMA = pa.schema([
    pa.field("run_date", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("finished_at", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # "published" | "rejected"
    pa.field("method", pa.string(), nullable=False),  # "holdout" | "previous_run"
    pa.field("evaluated_run", pa.string()),  # the run pointer scored, for "previous_run"
    pa.field("model", pa.string(), nullable=False),
    pa.field("pairs", pa.int64(), nullable=False),
    pa.field("hr_10", pa.float64()),
    pa.field("mrr_10", pa.float64()),
    pa.field("ndcg_10", pa.float64()),
    pa.field("hr_20", pa.float64()),
    pa.field("mrr_20", pa.float64()),
    pa.field("ndcg_20", pa.float64()),
    pa.field("coverage_10", pa.float64()),
    pa.field("coverage_20", pa.float64()),
])
_METRIC_COLUMNS = [f.name for f in HISTORY_SCHEMA][8:]


def partition_name(run_date: dt.date) -> str:
    return f"dt={run_date.isoformat()}"


def _print_notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PublishedRun:
    """A published run as a pointer names it."""

    pointer: str  # relative to the output root, e.g. "dt=2026-11-26/run=<run_id>"
    uri: str  # what Spark reads (store path or file:// URI)
    path: str  # the Storage path
    manifest: dict[str, Any] | None


class Publisher:
    """Owns every write of one run into an output root: lease, run directory, manifest,
    ``_SUCCESS``, pointers, rejection, retention and the metric history.

    Use as a context manager: entering takes the lease and starts renewing it, leaving stops
    renewing, removes this run's directory if it was neither published nor rejected, and
    releases the lease.
    """

    def __init__(self, store: Storage, *, run_date: dt.date, run_id: str,
                 lease_minutes: float, notice: Callable[[str], None] = _print_notice,
                 settle_seconds: float = 2.0) -> None:
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: expected letters, digits, '.', '_' or '-'")
        if lease_minutes <= 0:
            raise ValueError(f"lease_minutes must be > 0, got {lease_minutes}")
        self.store = store
        self.run_date = run_date
        self.run_id = run_id
        self.partition = partition_name(run_date)
        self.pointer = f"{self.partition}/run={run_id}"
        self.location = store.join(self.partition, f"run={run_id}")
        self.notice = notice
        self._lease = _Lease(store, run_id=run_id, seconds=lease_minutes * 60,
                             settle=settle_seconds)
        self._state = "new"  # new -> open -> published | rejected | closed
        self._previous: PublishedRun | None = None
        self._keep: set[str] = set()  # run pointers this run superseded: pruned only later
        self._history: list[dict[str, Any]] = []

    # -- before any work -------------------------------------------------------------------
    def check_output(self) -> None:
        """The output root must be a writable directory (created if missing): BadInput
        otherwise, or StorageError when the store itself fails (network, ...)."""
        root = self.store.root
        try:
            if self.store.exists(root) and not self.store.is_dir(root):
                raise BadInput(f"--output {root} is a file; expected a directory")
            self.store.mkdirs(root)
            probe = self.store.join(f".probe-{self.run_id}")
            self.store.write_bytes(probe, b"")
            self.store.delete(probe)
        except StorageError as exc:
            if exc.kind == "io":
                raise
            cause = str(exc).split(": ", 1)[-1]
            raise BadInput(f"--output {root} is not writable: {cause}") from None

    def __enter__(self) -> Publisher:
        if self._state != "new":
            raise RuntimeError("a Publisher is entered once")
        taken_over = self._lease.acquire()
        if taken_over:
            self.notice(f"{taken_over}; taking over")
        self._lease.start_renewing()
        self._state = "open"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lease.stop_renewing()
        failed = exc[0] is not None
        try:
            if self._state == "open" and self._lease.still_ours():
                self._remove_unpublished()
        except StorageError as err:
            self.notice(f"could not remove the unpublished run {self.location}: {err}")
        finally:
            self._state = "closed" if self._state == "open" else self._state
            try:
                self._lease.release()
            except StorageError as err:
                if not failed:
                    self.notice(f"could not release the lease (it expires by itself): {err}")

    def check(self) -> None:
        """Raise PublishConflict if this run no longer holds the output's lease."""
        if self._state not in ("open",):
            raise RuntimeError(f"publisher is {self._state}; use it inside `with publisher:`")
        self._lease.check()

    def clean_leftovers(self) -> list[str]:
        """Remove what interrupted runs left: run directories without ``_SUCCESS`` that no
        pointer names, stray pointer temporaries, and ``_staging``/``_trash`` of older
        versions. Safe because we hold the lease. Returns what was removed (relative names)."""
        self.check()
        removed = self._clean_legacy()
        named = self._named_runs()
        for partition in self._partitions():
            base = self.store.join(partition)
            for name in self.store.listdir(base):
                rel = f"{partition}/{name}"
                stray = ".tmp-" in name and not _RUN_DIR.match(name)
                killed = (_RUN_DIR.match(name) and rel not in named and rel != self.pointer
                          and not self.store.exists(self.store.join(rel, SUCCESS)))
                if stray or killed:
                    self.store.delete(self.store.join(rel))
                    removed.append(rel)
            self._drop_if_empty(partition)
        for name in self.store.listdir(self.store.root):
            if ".tmp-" in name:
                self.store.delete(self.store.join(name))
                removed.append(name)
        return removed

    def previous(self) -> PublishedRun | None:
        """What LATEST names when called (None when nothing is published): before publish(),
        the run this one follows; after it, the newest published run (this one, unless this
        run backfilled an older date)."""
        return self._resolve(self._read_pointer(LATEST))

    # -- writing ---------------------------------------------------------------------------
    def dataset_uri(self, name: str) -> str:
        """Where Spark writes dataset ``name`` of this run."""
        return self.store.uri(self.store.join(self.partition, f"run={self.run_id}",
                                              _check_name(name)))

    def write_datasets(self, frames: dict[str, DataFrame]) -> None:
        """Write Spark DataFrames as Parquet datasets of this run (overwrite)."""
        for name, frame in frames.items():
            self.check()
            frame.write.mode("overwrite").parquet(self.dataset_uri(name))

    def write_table(self, name: str, table: pa.Table) -> None:
        """Write a small pyarrow table as a one-file Parquet dataset of this run."""
        self.check()
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.store.write_bytes(f"{self.location}/{_check_name(name)}/part-00000.parquet",
                               buf.getvalue())

    def read_dataset(self, spark: SparkSession, name: str) -> DataFrame:
        """A dataset of this run read back with Spark."""
        return spark.read.parquet(self.dataset_uri(name))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """A JSON file in the run directory, e.g. metrics.json."""
        self.check()
        self.store.write_bytes(f"{self.location}/{_check_name(name)}", _json(data))

    @property
    def filesystem(self) -> Any:
        """A pyarrow filesystem on which ``location`` can be read and written (the report)."""
        return self.store.arrow_filesystem()

    # -- publishing ------------------------------------------------------------------------
    def publish(self, manifest: dict[str, Any], *,
                before_commit: Callable[[str], None] | None = None) -> str:
        """Complete the run (manifest.json, then _SUCCESS) and point CURRENT of its date and,
        unless an older date is being backfilled, LATEST at it. Returns the run location.

        ``before_commit(location)`` may add files (the report) to the complete run before any
        pointer names it. The lease is checked again right before the pointers move.
        """
        self.check()
        self._lease.verify()
        self._previous = self.previous()
        current = self._read_pointer(f"{self.partition}/{CURRENT}")
        legacy = current is None and self.store.exists(self.store.join(self.partition, SUCCESS))
        manifest.update(status="published", finished_at=_now(), run_id=self.run_id)
        self.store.write_bytes(f"{self.location}/{MANIFEST}", _json(manifest))
        self.store.write_bytes(f"{self.location}/{SUCCESS}", b"")
        if before_commit is not None:
            before_commit(self.location)
        self._lease.verify()  # last check: a run that lost its lease must not move pointers
        self.store.write_bytes(self.store.join(self.partition, CURRENT),
                               f"run={self.run_id}\n".encode())
        if self._moves_latest(self._previous):
            self.store.write_bytes(self.store.join(LATEST), f"{self.pointer}\n".encode())
        # readers may still be reading what the pointers named a moment ago: keep it for now
        self._keep = {p for p in (current and f"{self.partition}/{current}",
                                  legacy and self.partition,
                                  self._previous and self._previous.pointer) if p}
        self._state = "published"
        return self.location

    def reject(self, manifest: dict[str, Any]) -> str:
        """Keep a run that failed the quality gate, unpublished: its directory stays where it
        was written (manifest status "rejected", no _SUCCESS, no pointer), and
        ``_rejected/<partition>-<run_id>/`` holds a copy of the manifest and ``RUN`` naming
        it. Returns the run location."""
        self.check()
        manifest.update(status="rejected", finished_at=_now(), run_id=self.run_id)
        body = _json(manifest)
        self.store.write_bytes(f"{self.location}/{MANIFEST}", body)
        kept = self.store.join(REJECTED, f"{self.partition}-{self.run_id}")
        self.store.write_bytes(f"{kept}/{MANIFEST}", body)
        self.store.write_bytes(f"{kept}/{RUN_POINTER}", f"{self.pointer}\n".encode())
        self._state = "rejected"
        return self.location

    # -- after publishing ------------------------------------------------------------------
    def prune(self, retention_days: int) -> list[str]:
        """Delete superseded runs: those no pointer names (LATEST, a date's CURRENT, a
        _rejected entry), except the ones this run superseded a moment ago, which readers may
        still be reading (the next run deletes them). With ``retention_days`` > 0 also delete
        whole dates older than that before the run date, with their rejected runs, except a
        date holding a run LATEST names or this run just superseded. Returns what was removed
        (names relative to the output root)."""
        self._lease.check()
        removed = []
        cutoff = self.run_date - dt.timedelta(days=retention_days)
        if retention_days > 0:
            for name in self.store.listdir(self.store.join(REJECTED)):
                match = re.match(r"^dt=(\d{4}-\d{2}-\d{2})-", name)
                if match and dt.date.fromisoformat(match.group(1)) < cutoff:
                    self.store.delete(self.store.join(REJECTED, name))
                    removed.append(f"{REJECTED}/{name}")
        latest = self._read_pointer(LATEST) or ""
        named = self._named_runs() | self._keep | {self.pointer}
        spared = {p.split("/")[0] for p in self._keep | {latest}}
        for partition in self._partitions():
            day = dt.date.fromisoformat(_PARTITION.match(partition).group(1))
            if retention_days > 0 and day < cutoff and partition not in spared:
                self.store.delete(self.store.join(partition))
                removed.append(partition)
                continue
            entries = self.store.listdir(self.store.join(partition))
            legacy = CURRENT in entries and partition not in self._keep | {latest}
            for name in entries:
                rel = f"{partition}/{name}"
                if (_RUN_DIR.match(name) and rel not in named) or \
                        (legacy and not _RUN_DIR.match(name) and name != CURRENT):
                    # superseded, or the files of a run that an older version published
                    self.store.delete(self.store.join(rel))
                    removed.append(rel)
            self._drop_if_empty(partition)
        return removed

    def append_history(self, rows: list[dict[str, Any]]) -> None:
        """Add rows (HISTORY_SCHEMA; run_date, run_id and finished_at default to this run's) to
        this run's file under ``_metrics/``: one small Parquet file per run."""
        self._lease.check()
        defaults = {"run_date": self.run_date.isoformat(), "run_id": self.run_id,
                    "finished_at": _now()}
        for row in rows:
            unknown = set(row) - set(HISTORY_SCHEMA.names)
            if unknown:
                raise ValueError(f"history row has unknown columns {sorted(unknown)}; "
                                 f"expected {HISTORY_SCHEMA.names}")
            full = {name: row.get(name) for name in HISTORY_SCHEMA.names}
            for key, value in defaults.items():
                full[key] = full[key] or value
            missing = [f.name for f in HISTORY_SCHEMA if not f.nullable and full[f.name] is None]
            if missing:
                raise ValueError(f"history row lacks {missing}")
            self._history.append(full)
        if not self._history:
            return
        table = pa.Table.from_pylist(self._history, schema=HISTORY_SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.store.write_bytes(
            self.store.join(METRICS, f"{self.run_date.isoformat()}_{self.run_id}.parquet"),
            buf.getvalue())

    def history(self) -> pa.Table:
        """Every row under ``_metrics/``, oldest first (an empty table when there is none)."""
        tables = []
        for name in self.store.list_files(self.store.join(METRICS)):
            if not name.endswith(".parquet") or "/" in name or name.startswith((".", "_")):
                continue
            data = self.store.read_bytes(self.store.join(METRICS, name))
            if data:
                tables.append(pq.read_table(pa.BufferReader(data)).select(HISTORY_SCHEMA.names)
                              .cast(HISTORY_SCHEMA))
        table = pa.concat_tables(tables) if tables else HISTORY_SCHEMA.empty_table()
        return table.sort_by([("run_date", "ascending"), ("finished_at", "ascending"),
                              ("run_id", "ascending"), ("model", "ascending")])

    # -- helpers ---------------------------------------------------------------------------
    def _moves_latest(self, previous: PublishedRun | None) -> bool:
        """LATEST only moves forward: a backfill of an older date does not turn it back."""
        if previous is None:
            return True
        match = _POINTER.match(previous.pointer)
        return match is None or match.group(1) <= self.run_date.isoformat()

    def _read_pointer(self, rel: str) -> str | None:
        text = self.store.read_text(self.store.join(rel))
        return text.strip() if text and text.strip() else None

    def _resolve(self, pointer: str | None) -> PublishedRun | None:
        if not pointer or not _POINTER.match(pointer):
            if pointer:
                self.notice(f"{LATEST} holds {pointer!r}, not a run pointer: ignored")
            return None
        path = self.store.join(*pointer.split("/"))
        if not self.store.exists(f"{path}/{SUCCESS}"):
            self.notice(f"{LATEST} names {pointer}, which has no {SUCCESS}: ignored")
            return None
        text = self.store.read_text(f"{path}/{MANIFEST}")
        return PublishedRun(pointer, self.store.uri(path), path,
                            json.loads(text) if text else None)

    def _partitions(self) -> list[str]:
        return [n for n in self.store.listdir(self.store.root) if _PARTITION.match(n)]

    def _named_runs(self) -> set[str]:
        """Run directories a pointer names: LATEST, every date's CURRENT, _rejected entries."""
        named = set()
        latest = self._read_pointer(LATEST)
        if latest:
            named.add(latest)
        for partition in self._partitions():
            current = self._read_pointer(f"{partition}/{CURRENT}")
            if current:
                named.add(f"{partition}/{current}")
        for name in self.store.listdir(self.store.join(REJECTED)):
            target = self._read_pointer(f"{REJECTED}/{name}/{RUN_POINTER}")
            if target:
                named.add(target)
        return named

    def _drop_if_empty(self, partition: str) -> None:
        if not self.store.listdir(self.store.join(partition)):
            self.store.delete(self.store.join(partition))

    def _remove_unpublished(self) -> None:
        if self.store.exists(self.location):
            self.store.delete(self.location)
        self._drop_if_empty(self.partition)

    def _clean_legacy(self) -> list[str]:
        """Tidy ``_staging``/``_trash`` left by versions that published by renaming."""
        removed = []
        trash = self.store.join("_trash")
        for name in self.store.listdir(trash):
            # killed between its two renames, a re-run of those versions left the partition
            # it was replacing in the trash and none in its place: put it back
            match = _TRASHED.match(name)
            if match and not self.store.exists(self.store.join(match.group(1), SUCCESS)):
                self.store.delete(self.store.join(match.group(1)))  # a partial copy, if any
                self.store.rename(self.store.join("_trash", name),
                                  self.store.join(match.group(1)))
                removed.append(f"_trash/{name} (restored as {match.group(1)})")
        for area in LEGACY_AREAS:
            path = self.store.join(area)
            if self.store.exists(path):
                removed += [f"{area}/{n}" for n in self.store.listdir(path)]
                self.store.delete(path)
        return removed


def history_rows(manifest: dict[str, Any], *, status: str | None = None) -> list[dict[str, Any]]:
    """HISTORY_SCHEMA rows (one per model) from a manifest's ``metrics`` block."""
    metrics = manifest.get("metrics") or {}
    models = metrics.get("models") or {}
    default_pairs = metrics.get("pairs", (metrics.get("holdout") or {}).get("pairs", 0))
    rows = []
    for model, values in sorted(models.items()):
        row = {"run_date": manifest.get("run_date"), "run_id": manifest.get("run_id"),
               "finished_at": manifest.get("finished_at"),
               "status": status or manifest.get("status"),
               "method": metrics.get("method", "holdout"),
               "evaluated_run": metrics.get("evaluated_run"), "model": model,
               "pairs": int(values.get("pairs", default_pairs) or 0)}
        for column in _METRIC_COLUMNS:
            value = values.get(column.replace("_", "@"))
            row[column] = None if value is None else float(value)
        rows.append(row)
    return rows


class _Lease:
    """The output's lease file: create-if-absent, renewed, taken over once expired.

    Taking over an expired lease (and creating one where create-if-absent is not atomic) is a
    plain write; the writer pauses ``settle`` seconds and reads the file back, so of two runs
    racing for it the one whose write landed last wins and the other stops. Renewal refuses to
    extend a lease that has expired or is no longer ours, and publishing verifies it once more
    right before the pointers move.
    """

    def __init__(self, store: Storage, *, run_id: str, seconds: float, settle: float) -> None:
        self.store, self.run_id, self.seconds, self.settle = store, run_id, seconds, settle
        self.path = store.join(LOCK)
        self.acquired_at = ""
        self.expires = 0.0  # epoch seconds
        self.lost: str | None = None
        self.held = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, now: float) -> bytes:
        return _json({"run_id": self.run_id, "host": host_name(), "pid": os.getpid(),
                      "pid_started": _proc_stat(os.getpid())[1], "pid_ns": _pid_namespace(),
                      "acquired_at": self.acquired_at, "renewed_at": _iso(now),
                      "expires_at": _iso(now + self.seconds)})

    def acquire(self) -> str | None:
        """Take the lease; returns a notice when an expired one was taken over."""
        for _ in range(5):
            now = time.time()
            self.acquired_at = _iso(now)
            record = self._record(now)
            if self.store.create_exclusive(self.path, record):
                if not self.store.atomic_create:
                    self._confirm()
                self._held(now)
                return None
            holder = self._read()
            if holder is None:  # released between our attempt and the read: try again
                continue
            stale = _stale_reason(holder, now)
            if stale is None:
                raise PublishConflict(f"output {self.store.root} is leased by run "
                                      f"{_describe(holder)}; it may still be running: wait "
                                      f"for it, or if it died, run again after "
                                      f"{holder.get('expires_at', '?')}")
            now = time.time()
            self.acquired_at = _iso(now)
            self.store.write_bytes(self.path, self._record(now))
            self._confirm()
            self._held(now)
            return (f"the lease of run {holder.get('run_id', '?')} on "
                    f"{holder.get('host', '?')} is stale ({stale})")
        raise PublishConflict(f"output {self.store.root}: the lease at {self.path} kept "
                              "changing while this run tried to take it")

    def _held(self, now: float) -> None:
        self.expires, self.held, self.lost = now + self.seconds, True, None

    def _read(self) -> dict[str, Any] | None:
        text = self.store.read_text(self.path)
        if text is None:
            return None
        holder = _parse_json(text)
        if not holder and self.settle:  # maybe caught mid-write (HDFS): look once more
            time.sleep(self.settle)
            text = self.store.read_text(self.path)
            holder = _parse_json(text) if text is not None else None
        return holder

    def _confirm(self) -> None:
        """Read back after a pause: whoever wrote last owns the lease."""
        if self.settle:
            time.sleep(self.settle)
        holder = _parse_json(self.store.read_text(self.path))
        if holder.get("run_id") != self.run_id:
            raise PublishConflict(f"output {self.store.root} was leased at the same time by "
                                  f"run {_describe(holder)}; this run stops")

    def start_renewing(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="item2vec-lease",
                                        daemon=True)
        self._thread.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _renew_loop(self) -> None:
        interval = max(self.seconds / 5, 0.05)
        while not self._stop.wait(interval):
            try:
                self.verify(renew=True)
            except PublishConflict:
                return  # recorded in self.lost; the run fails at its next check
            except StorageError:
                continue  # transient: retried next tick; the expiry check catches a long outage
            except BaseException:  # the process is going down: stop quietly
                return

    def verify(self, *, renew: bool = False) -> None:
        """Raise PublishConflict unless the lease file still names this run and has not
        expired; with ``renew``, extend it."""
        with self._lock:
            self.check()
            holder = _parse_json(self.store.read_text(self.path))
            now = time.time()
            if holder.get("run_id") != self.run_id:
                self.lost = (f"the lease of output {self.store.root} was taken over by run "
                             f"{_describe(holder)}" if holder else
                             f"the lease file {self.path} disappeared")
            elif now >= self.expires:
                self.lost = (f"the lease of output {self.store.root} expired at "
                             f"{_iso(self.expires)} before it could be renewed (driver stalled "
                             f"or storage unreachable for longer than output.lock_lease_minutes)")
            elif renew:
                self.store.write_bytes(self.path, self._record(now))
                self.expires = now + self.seconds
            self.check()

    def check(self) -> None:
        if self.lost:
            raise PublishConflict(f"{self.lost}; this run stops without publishing")
        if not self.held:
            raise PublishConflict(f"this run does not hold the lease of {self.store.root}")

    def still_ours(self) -> bool:
        try:
            self.verify()
        except (PublishConflict, StorageError):
            return False
        return True

    def release(self) -> None:
        """Delete the lease file if it is still ours. Under the lock, so that a renewal still
        in flight (a slow store) cannot write the lease again after it was released."""
        if not self.held:
            return
        locked = self._lock.acquire(timeout=60)
        try:
            self.held = False
            if self.lost is None and _parse_json(self.store.read_text(self.path)).get(
                    "run_id") == self.run_id:
                self.store.delete(self.path)
        finally:
            if locked:
                self._lock.release()


def _stale_reason(holder: dict[str, Any], now: float) -> str | None:
    """Why a lease found in place may be taken over, or None when it is live."""
    if not holder:
        return "its lease file is unreadable"
    if _holder_is_dead(holder):
        return f"its process {holder.get('pid')} on this host is gone"
    expires = _parse_iso(holder.get("expires_at"))
    if expires is None:  # a _LOCK of an older version: no expiry recorded, never renewed
        since = _parse_iso(holder.get("since"))
        if since is None:
            return "its lease records no expiry"
        return None if now < since + 24 * 3600 else f"locked since {holder.get('since')}"
    if now >= expires:
        return f"expired at {holder.get('expires_at')}"
    return None


def _describe(holder: dict[str, Any]) -> str:
    return (f"{holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')}, renewed at {holder.get('renewed_at', '?')}, "
            f"expires at {holder.get('expires_at', '?')})")


def _check_name(name: str) -> str:
    if not name or "/" in name or name.startswith((".", "_")) or name == "..":
        raise ValueError(f"dataset/file name {name!r}: expected a plain name")
    if name in (MANIFEST, SUCCESS):
        raise ValueError(f"{name} is written by publish()")
    return name


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso(epoch: float) -> str:
    return (dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))


def _parse_iso(text: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _parse_json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _holder_is_dead(holder: dict[str, Any]) -> bool:
    """The same-host fast path: True only when we can tell for sure (same host, same PID
    namespace, and no such process); elsewhere the lease's expiry decides. The namespace check
    matters for containers that share the host's name but not its process table."""
    pid = holder.get("pid")
    if holder.get("host") != host_name() or not isinstance(pid, int):
        return False
    if "expires_at" in holder and holder.get("pid_ns") != _pid_namespace():
        return False  # (a _LOCK of an older version records no namespace: same host is enough)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # kill(pid, 0) also succeeds for a zombie (a killed driver not yet reaped: under
    # spark-submit the Python driver is the JVM's child, and when both are killed it is
    # re-parented to PID 1, which in containers may reap late or never) and for an unrelated
    # process that reused the pid. /proc tells both apart where it exists (Linux).
    state, started = _proc_stat(pid)
    if state == "Z":
        return True
    recorded = holder.get("pid_started")
    return recorded is not None and started is not None and recorded != started


def _pid_namespace() -> str | None:
    """This process's PID namespace (Linux), e.g. 'pid:[4026531836]'; None elsewhere."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state letter, start time in clock ticks since boot) from /proc, or Nones elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None, None
