"""Read a published item2vec output from Python without Spark (pyarrow only).

The job publishes ``<output>/dt=YYYY-MM-DD/`` partitions and then points ``<output>/LATEST`` at
the newest complete one (see docs/consuming.md). Consumers must follow ``LATEST`` rather than
picking the highest ``dt=`` directory: a higher partition may still be being written or may have
failed its quality gate.

These helpers take local paths. For object stores or HDFS, read ``LATEST`` and the Parquet
directories with a ``pyarrow.fs`` filesystem (``pyarrow.dataset.dataset(path, filesystem=fs)``)
or with DuckDB's ``httpfs`` extension; the layout is identical.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

__all__ = [
    "check_run_dir",
    "latest_partition",
    "read_item_vectors",
    "read_manifest",
    "read_similar_items",
    "read_table",
]

TABLES = ("vocabulary", "item_vectors", "similar_items")
_PARTITION = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")


def check_run_dir(run_dir: str | Path) -> Path:
    """Return ``run_dir`` as a Path if it is a complete published run (has ``_SUCCESS``).

    A run directory without ``_SUCCESS`` is incomplete or was never published, so reading it
    could return partial data; we refuse instead.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory not found: {path}")
    if not (path / "_SUCCESS").is_file():
        raise FileNotFoundError(f"run directory {path} has no _SUCCESS marker (incomplete run)")
    return path


def latest_partition(output: str | Path) -> str:
    """Return the path of the partition ``<output>/LATEST`` points at.

    Raises FileNotFoundError when LATEST is missing or names a partition that does not exist or
    lacks ``_SUCCESS``.
    """
    root = Path(output)
    latest = root / "LATEST"
    if not latest.is_file():
        raise FileNotFoundError(
            f"no LATEST file in {root}: nothing has been published there yet "
            "(or the path is not an item2vec output root)"
        )
    name = latest.read_text(encoding="utf-8").strip()
    if not _PARTITION.match(name):
        raise FileNotFoundError(f"{latest} holds {name!r}, expected a partition like dt=YYYY-MM-DD")
    return str(check_run_dir(root / name))


def read_table(run_dir: str | Path, name: str, *, filter: pc.Expression | None = None) -> pa.Table:
    """Read one Parquet table (``vocabulary``, ``item_vectors``, ``similar_items``) of a run dir.

    pyarrow.dataset skips Spark's ``_SUCCESS`` and ``.crc`` side files (``_``/``.`` prefixes).
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    path = check_run_dir(run_dir) / name
    if not path.is_dir():
        raise FileNotFoundError(f"table directory not found: {path}")
    return ds.dataset(path, format="parquet").to_table(filter=filter)


def read_similar_items(output: str | Path, *, item_id: Any = None) -> pa.Table:
    """Neighbours from the latest run, sorted by (item_id, rank).

    With ``item_id`` only that item's rows are read (the filter is pushed into the Parquet scan);
    the value is cast to the column type, so ``"42"`` works for an integer item_id column.
    """
    run_dir = latest_partition(output)
    expr = None
    if item_id is not None:
        schema = ds.dataset(Path(run_dir) / "similar_items", format="parquet").schema
        id_type = schema.field("item_id").type
        try:
            value = pa.scalar(item_id).cast(id_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"item_id {item_id!r} cannot be cast to the column type {id_type}"
            ) from exc
        expr = pc.field("item_id") == value
    table = read_table(run_dir, "similar_items", filter=expr)
    return table.sort_by([("item_id", "ascending"), ("rank", "ascending")])


def read_item_vectors(output: str | Path) -> pa.Table:
    """Item vectors from the latest run, sorted by item_index (most frequent item first)."""
    table = read_table(latest_partition(output), "item_vectors")
    return table.sort_by("item_index")


def read_manifest(output: str | Path) -> dict[str, Any]:
    """The latest run's manifest.json as a dict (counts, timings, config, optional metrics)."""
    path = Path(latest_partition(output)) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))
