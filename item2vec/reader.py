"""Read a published item2vec output from Python without Spark (pyarrow only), on any store.

The job writes each run under ``<output>/dt=YYYY-MM-DD/run=<run_id>/`` and then points
``<output>/LATEST`` at it (``dt=YYYY-MM-DD/run=<run_id>``, relative to the output root; outputs of
older versions hold just ``dt=YYYY-MM-DD``). ``<output>/dt=YYYY-MM-DD/CURRENT`` names the
published run of one date. Consumers must follow these pointers rather than pick the highest
directory: a newer run may still be being written or may have failed its quality gate. See
docs/consuming.md.

Every function takes a local path, a URI that pyarrow understands (``file://``, ``s3://``,
``gs://``, ``hdfs://``, ``abfs://``; ``s3a://`` is read as ``s3://``) or, with fsspec installed,
any fsspec URI. Pass ``filesystem=`` (a ``pyarrow.fs.FileSystem`` or an fsspec filesystem) to
read paths on that filesystem instead, e.g. an ``S3FileSystem`` with an endpoint override or a
``SubTreeFileSystem``. Locations returned for an explicit filesystem are :class:`FsPath`
strings that remember it, so they can be handed back to these functions as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

__all__ = [
    "FsPath",
    "check_run_dir",
    "is_local_location",
    "latest_partition",
    "latest_run",
    "local_dir",
    "read_history",
    "read_item_vectors",
    "read_manifest",
    "read_run_manifest",
    "read_similar_items",
    "read_table",
    "resolve",
    "run_for_date",
    "subpath",
]

TABLES = ("vocabulary", "item_vectors", "similar_items")
POINTER = re.compile(r"^dt=\d{4}-\d{2}-\d{2}(/run=[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_RUN = re.compile(r"^run=[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}  # Hadoop's names for what pyarrow calls s3


class FsPath(str):
    """A path string that remembers the pyarrow filesystem it lives on."""

    filesystem: pafs.FileSystem

    def __new__(cls, path: str, filesystem: pafs.FileSystem) -> FsPath:
        self = super().__new__(cls, path)
        self.filesystem = filesystem
        return self

    def __reduce__(self) -> tuple:
        return (FsPath, (str(self), self.filesystem))


Location = str | os.PathLike


def resolve(location: Location, *, filesystem: Any = None
            ) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path on it) for a local path, URI, FsPath or explicit filesystem."""
    if filesystem is None and isinstance(location, FsPath):
        filesystem = location.filesystem
    text = os.fspath(location)
    if filesystem is not None:
        return _as_arrow(filesystem), text.rstrip("/") or text
    if _is_uri(text):
        scheme = urlparse(text).scheme
        uri = _SCHEME_ALIASES[scheme] + text[len(scheme):] if scheme in _SCHEME_ALIASES else text
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            fs, path = _from_fsspec(uri, exc)
        return fs, path.rstrip("/") or path
    return pafs.LocalFileSystem(), os.path.abspath(text)


def _is_uri(text: str) -> bool:
    return "://" in text or text.startswith("file:")


def _as_arrow(filesystem: Any) -> pafs.FileSystem:
    if isinstance(filesystem, pafs.FileSystem):
        return filesystem
    from pyarrow.fs import FSSpecHandler, PyFileSystem  # an fsspec filesystem

    return PyFileSystem(FSSpecHandler(filesystem))


def _from_fsspec(uri: str, error: Exception) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError:
        raise ValueError(f"{uri}: pyarrow cannot open this scheme ({error}); install fsspec "
                         "and the scheme's package, or pass filesystem=") from None
    fs, path = fsspec.core.url_to_fs(uri)
    return _as_arrow(fs), path


def subpath(location: Location, rel: str, *, filesystem: Any = None) -> str:
    """``location``/``rel`` shaped like ``location``: a local path, a URI or an FsPath."""
    if filesystem is None and isinstance(location, FsPath):
        filesystem = location.filesystem
    text = os.fspath(location)
    if filesystem is not None:
        return FsPath(f"{text.rstrip('/')}/{rel}", _as_arrow(filesystem))
    if _is_uri(text):
        return f"{text.rstrip('/')}/{rel}"
    return os.path.join(text, *rel.split("/"))


def _kind(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return fs.get_file_info(path).type


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def check_run_dir(run_dir: Location, *, filesystem: Any = None) -> str:
    """Return ``run_dir`` (as a string) if it is a complete run: it has ``_SUCCESS``.

    A run directory without ``_SUCCESS`` is incomplete, failed or was never published, so
    reading it could return partial data; we refuse instead.
    """
    fs, path = resolve(run_dir, filesystem=filesystem)
    if _kind(fs, path) != pafs.FileType.Directory:
        raise FileNotFoundError(f"run directory not found: {os.fspath(run_dir)}")
    if _kind(fs, f"{path}/_SUCCESS") != pafs.FileType.File:
        raise FileNotFoundError(
            f"run directory {os.fspath(run_dir)} has no _SUCCESS marker (incomplete or "
            "unpublished run)")
    if filesystem is not None and not isinstance(run_dir, FsPath):
        return FsPath(os.fspath(run_dir), _as_arrow(filesystem))
    return run_dir if isinstance(run_dir, FsPath) else os.fspath(run_dir)


def _follow(output: Location, pointer_file: str, *, filesystem: Any,
            prefix: str = "") -> str:
    fs, root = resolve(output, filesystem=filesystem)
    path = f"{root}/{pointer_file}"
    if _kind(fs, path) != pafs.FileType.File:
        raise FileNotFoundError(
            f"no {pointer_file} in {os.fspath(output)}: nothing has been published there yet "
            "(or the path is not an item2vec output root)")
    name = prefix + _read_text(fs, path).strip()
    if not POINTER.match(name):
        raise FileNotFoundError(f"{pointer_file} in {os.fspath(output)} holds {name!r}, expected "
                                "a partition like dt=YYYY-MM-DD or dt=YYYY-MM-DD/run=<run_id>")
    return check_run_dir(subpath(output, name, filesystem=filesystem))


def latest_run(output: Location, *, filesystem: Any = None) -> str:
    """The location of the run ``<output>/LATEST`` names (resolved relative to ``output``).

    Raises FileNotFoundError when LATEST is missing or names a run that does not exist or lacks
    ``_SUCCESS``.
    """
    return _follow(output, "LATEST", filesystem=filesystem)


latest_partition = latest_run  # the name used before runs had their own directories


def run_for_date(output: Location, run_date: dt.date | str, *, filesystem: Any = None) -> str:
    """The location of the run published for ``run_date`` (``dt=…/CURRENT``; outputs of older
    versions: the ``dt=…`` directory itself)."""
    day = dt.date.fromisoformat(str(run_date)).isoformat()
    fs, root = resolve(output, filesystem=filesystem)
    if _kind(fs, f"{root}/dt={day}/CURRENT") == pafs.FileType.File:
        run = _read_text(fs, f"{root}/dt={day}/CURRENT").strip()
        if not _RUN.match(run):
            raise FileNotFoundError(f"dt={day}/CURRENT in {os.fspath(output)} holds {run!r}, "
                                    "expected run=<run_id>")
        return check_run_dir(subpath(output, f"dt={day}/{run}", filesystem=filesystem))
    try:
        return check_run_dir(subpath(output, f"dt={day}", filesystem=filesystem))
    except FileNotFoundError:
        raise FileNotFoundError(f"no run published for {day} in {os.fspath(output)}") from None


def read_table(run_dir: Location, name: str, *, filter: pc.Expression | None = None,
               filesystem: Any = None) -> pa.Table:
    """Read one Parquet table (``vocabulary``, ``item_vectors``, ``similar_items``) of a run.

    pyarrow.dataset skips Spark's ``_SUCCESS`` and ``.crc`` side files (``_``/``.`` prefixes).
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    return _dataset(run_dir, name, filesystem=filesystem).to_table(filter=filter)


def _dataset(run_dir: Location, name: str, *, filesystem: Any) -> ds.Dataset:
    fs, path = resolve(check_run_dir(run_dir, filesystem=filesystem), filesystem=filesystem)
    if _kind(fs, f"{path}/{name}") != pafs.FileType.Directory:
        raise FileNotFoundError(f"table directory not found: {subpath(run_dir, name)}")
    return ds.dataset(f"{path}/{name}", filesystem=fs, format="parquet")


def read_similar_items(output: Location, *, item_id: Any = None,
                       filesystem: Any = None) -> pa.Table:
    """Neighbours from the latest run, sorted by (item_id, rank).

    With ``item_id`` only that item's rows are read (the filter is pushed into the Parquet scan);
    the value is cast to the column type, so ``"42"`` works for an integer item_id column.
    """
    run_dir = latest_run(output, filesystem=filesystem)
    dataset = _dataset(run_dir, "similar_items", filesystem=filesystem)
    expr = None
    if item_id is not None:
        id_type = dataset.schema.field("item_id").type
        try:
            value = pa.scalar(item_id).cast(id_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"item_id {item_id!r} cannot be cast to the column type {id_type}"
            ) from exc
        expr = pc.field("item_id") == value
    table = dataset.to_table(filter=expr)
    return table.sort_by([("item_id", "ascending"), ("rank", "ascending")])


def read_item_vectors(output: Location, *, filesystem: Any = None) -> pa.Table:
    """Item vectors from the latest run, sorted by item_index (most frequent item first)."""
    table = read_table(latest_run(output, filesystem=filesystem), "item_vectors",
                       filesystem=filesystem)
    return table.sort_by("item_index")


def read_run_manifest(run_dir: Location, *, filesystem: Any = None) -> dict[str, Any]:
    """manifest.json of a complete run directory, as a dict."""
    fs, path = resolve(check_run_dir(run_dir, filesystem=filesystem), filesystem=filesystem)
    if _kind(fs, f"{path}/manifest.json") != pafs.FileType.File:
        raise FileNotFoundError(f"no manifest.json in {os.fspath(run_dir)}")
    return json.loads(_read_text(fs, f"{path}/manifest.json"))


def read_manifest(output: Location, *, filesystem: Any = None) -> dict[str, Any]:
    """The latest run's manifest.json as a dict (counts, timings, config, optional metrics)."""
    return read_run_manifest(latest_run(output, filesystem=filesystem), filesystem=filesystem)


def read_history(output: Location, *, filesystem: Any = None) -> pa.Table:
    """The metric history under ``<output>/_metrics/`` (one row per run and model), oldest
    first; an empty table when no run has recorded metrics yet."""
    fs, root = resolve(output, filesystem=filesystem)
    path = f"{root}/_metrics"
    if _kind(fs, path) != pafs.FileType.Directory:
        return pa.table({})
    table = ds.dataset(path, filesystem=fs, format="parquet").to_table()
    if table.num_rows == 0:
        return table
    return table.sort_by([("run_date", "ascending"), ("finished_at", "ascending"),
                          ("model", "ascending")])


def is_local_location(location: Location, *, filesystem: Any = None) -> bool:
    """True when ``location`` is a directory of this machine (a plain path or file:// URI)."""
    if filesystem is None and isinstance(location, FsPath):
        filesystem = location.filesystem
    if filesystem is not None:
        return isinstance(filesystem, pafs.LocalFileSystem)
    text = os.fspath(location)
    return not _is_uri(text) or urlparse(text).scheme == "file"


def local_dir(location: Location, *, filesystem: Any = None) -> Path:
    """The local directory behind a location for which :func:`is_local_location` holds."""
    return Path(resolve(location, filesystem=filesystem)[1])
