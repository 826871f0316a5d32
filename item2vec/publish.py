"""Atomic publishing: staging -> dt=YYYY-MM-DD (with _SUCCESS, manifest.json) -> LATEST.

A run writes its datasets under ``<output>/_staging/<run_id>/``, writes ``manifest.json`` and
``_SUCCESS`` there, and renames the whole directory to ``dt=...`` in one step; only then is
``LATEST`` replaced (write-then-rename). A reader following LATEST therefore sees a complete
run or the previous one. A lock file keeps two runs from publishing into one output at once;
a run killed mid-way leaves only ``_staging``/``_trash`` leftovers, which the next run removes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from typing import Any

from item2vec.errors import BadInput, PublishConflict
from item2vec.storage import Storage, host_name

STAGING, TRASH, REJECTED = "_staging", "_trash", "_rejected"
LOCK, LATEST, MANIFEST, SUCCESS = "_LOCK", "LATEST", "manifest.json", "_SUCCESS"
DATASETS = ("vocabulary", "item_vectors", "similar_items")
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_TRASHED = re.compile(r"^.+-(dt=\d{4}-\d{2}-\d{2})$")  # <run_id>-dt=... (see publish)


def partition_name(run_date: dt.date) -> str:
    return f"dt={run_date.isoformat()}"


class Publisher:
    """Owns one run's view of the output root: lock, staging, publish, reject, retention."""

    def __init__(self, store: Storage, run_date: dt.date, run_id: str) -> None:
        self.store = store
        self.run_date = run_date
        self.run_id = run_id
        self.partition = partition_name(run_date)
        self.staging = store.join(STAGING, run_id)
        self._locked = False

    # -- before any work -------------------------------------------------------------------
    def check_output(self) -> None:
        """The output root must be a writable directory (created if missing)."""
        root = self.store.root
        if self.store.exists(root) and not self.store.is_dir(root):
            raise BadInput(f"--output {root} is a file; expected a directory")
        try:
            self.store.mkdirs(root)
            probe = self.store.join(f".probe-{self.run_id}")
            self.store.write_text(probe, "")
            self.store.delete(probe)
        except Exception as exc:  # PermissionError, read-only FS, py4j errors
            raise BadInput(f"--output {root} is not writable: {str(exc).splitlines()[0]}") from None

    def lock(self) -> None:
        """Take the output's lock, or raise PublishConflict naming the holder."""
        path = self.store.join(LOCK)
        info = json.dumps({"run_id": self.run_id, "host": host_name(), "pid": os.getpid(),
                           "pid_started": _proc_stat(os.getpid())[1], "since": _now()})
        for _ in range(2):
            if self.store.create_exclusive(path, info):
                self._locked = True
                return
            holder = _parse_json(self.store.read_text(path))
            if not _holder_is_dead(holder):
                break
            self.store.delete(path)  # its process is gone (killed): the lock is stale
        raise PublishConflict(
            f"output {self.store.root} is locked by run {holder.get('run_id', '?')} (pid "
            f"{holder.get('pid', '?')} on {holder.get('host', '?')} since "
            f"{holder.get('since', '?')}); if that run is dead, delete {path}")

    def unlock(self) -> None:
        if self._locked:
            self.store.delete(self.store.join(LOCK))
            self._locked = False

    def clean_leftovers(self) -> list[str]:
        """Remove staging and trash left by killed runs (safe: we hold the lock)."""
        removed = []
        for name in self.store.listdir(self.store.join(TRASH)):
            # A run killed between its two renames in publish() left the partition it was
            # replacing in the trash and no partition in its place: put it back, don't delete it.
            match = _TRASHED.match(name)
            if match and not self.store.exists(self.store.join(match.group(1))):
                self.store.rename(self.store.join(TRASH, name), self.store.join(match.group(1)))
                removed.append(f"{TRASH}/{name} (restored as {match.group(1)})")
        for area in (STAGING, TRASH):
            for name in self.store.listdir(self.store.join(area)):
                self.store.delete(self.store.join(area, name))
                removed.append(f"{area}/{name}")
        return removed

    # -- writing ---------------------------------------------------------------------------
    def dataset_uri(self, name: str) -> str:
        """Where Spark writes dataset ``name`` for this run."""
        return self.store.uri(self.store.join(STAGING, self.run_id, name))

    def publish(self, manifest: dict[str, Any],
                before_commit: Callable[[str], None] | None = None) -> str:
        """Complete the staged run and make it the published one. Returns its directory.

        ``before_commit(staging_dir)`` may add files (e.g. the report) to the complete run
        before it becomes visible.
        """
        self._finish_staging(manifest, status="published")
        if before_commit:
            before_commit(self.staging)
        final = self.store.join(self.partition)
        old = None
        if self.store.exists(final):
            self.store.mkdirs(self.store.join(TRASH))
            old = self.store.join(TRASH, f"{self.run_id}-{self.partition}")
            self.store.rename(final, old)
        self.store.rename(self.staging, final)
        if self.moves_latest():
            self.store.write_text(self.store.join(LATEST), self.partition + "\n")
        if old:
            self.store.delete(old)
        return final

    def reject(self, manifest: dict[str, Any]) -> str:
        """Keep a run that failed the quality gate for inspection, outside the published tree."""
        self._finish_staging(manifest, status="rejected")
        self.store.mkdirs(self.store.join(REJECTED))
        final = self.store.join(REJECTED, f"{self.partition}-{self.run_id}")
        self.store.rename(self.staging, final)
        return final

    def _finish_staging(self, manifest: dict[str, Any], *, status: str) -> None:
        manifest["status"] = status
        manifest["finished_at"] = _now()
        self.store.write_text(self.store.join(STAGING, self.run_id, MANIFEST),
                              json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
        self.store.write_text(self.store.join(STAGING, self.run_id, SUCCESS), "")

    def moves_latest(self) -> bool:
        """LATEST only moves forward: a backfill of an older date does not turn it back."""
        current = self.latest()
        return not current or not _PARTITION.match(current) or current <= self.partition

    # -- after publishing ------------------------------------------------------------------
    def latest(self) -> str | None:
        text = self.store.read_text(self.store.join(LATEST))
        return text.strip() if text else None

    def prune(self, retention_days: int) -> list[str]:
        """Delete dt=... partitions older than ``retention_days`` before the run date."""
        if retention_days <= 0:
            return []
        cutoff = self.run_date - dt.timedelta(days=retention_days)
        keep = self.latest()
        removed = []
        for name in self.store.listdir(self.store.root):
            match = _PARTITION.match(name)
            if match and name != keep and dt.date.fromisoformat(match.group(1)) < cutoff:
                self.store.delete(self.store.join(name))
                removed.append(name)
        return removed


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _holder_is_dead(holder: dict[str, Any]) -> bool:
    """True only when we can tell for sure: same host and no such process."""
    pid = holder.get("pid")
    if holder.get("host") != host_name() or not isinstance(pid, int):
        return False
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


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state letter, start time in clock ticks since boot) from /proc, or Nones elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None, None
