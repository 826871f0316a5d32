"""Helpers shared by the report modules: reading a run directory and joining item metadata.

Kept separate from ``__init__`` so the submodules can import it without an import cycle. Run
directories and item files may be local paths, URIs or :class:`item2vec.reader.FsPath`
locations: every read goes through :mod:`item2vec.reader`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from item2vec.reader import read_run_manifest, read_table, resolve

EXTRA_HINT = "install the report extra: pip install '.[report]'"
META_COLUMNS = ("title", "category")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")


def require(module: str) -> ModuleType:
    """Import an optional dependency, failing with an actionable message."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is required for the report; {EXTRA_HINT}") from exc


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """manifest.json of a run directory (which must carry ``_SUCCESS``)."""
    return read_run_manifest(run_dir)


def top_vectors(run_dir: str | Path, top_n: int) -> tuple[pa.Table, np.ndarray]:
    """The ``top_n`` most frequent items and their vectors as a (n, dim) float32 matrix.

    item_index is 0..V-1 with the most frequent item first, so ``item_index < top_n`` selects the
    top items inside the Parquet scan without loading the whole table.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    table = read_table(run_dir, "item_vectors", filter=pc.field("item_index") < top_n)
    table = table.sort_by("item_index")
    return table, vectors_matrix(table)


def vectors_matrix(table: pa.Table) -> np.ndarray:
    """The ``vector`` list column as a dense float32 matrix (all vectors must have one length)."""
    column = table.column("vector").combine_chunks()
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if column.null_count:
        raise ValueError("item_vectors has null vectors")
    lengths = pc.list_value_length(column)
    dim = pc.min(lengths).as_py()
    if dim != pc.max(lengths).as_py():
        raise ValueError("item_vectors has vectors of different lengths")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(table.num_rows, dim)


def load_items(
    path: str | Path, *, item_col: str = "item_id", id_type: pa.DataType | None = None
) -> pa.Table:
    """Read item metadata (Parquet file/dir or CSV with header) as item_id [, title, category].

    CSV ids are read as strings so ids like ``"007"`` survive; pass ``id_type`` (or let the report
    functions do it) to cast them to the run's item_id type. Other columns are dropped.
    """
    source = os.fspath(path)
    fs, where = resolve(source)
    kind = fs.get_file_info(where).type
    if kind == pafs.FileType.NotFound:
        raise FileNotFoundError(f"items file not found: {source}")
    name = where.rsplit("/", 1)[-1].lower()
    if kind == pafs.FileType.File and name.endswith(_CSV_SUFFIXES):
        delimiter = "\t" if ".tsv" in name else ","
        types = {name: pa.string() for name in (item_col, *META_COLUMNS)}
        with fs.open_input_stream(where, compression="detect") as stream:
            table = pacsv.read_csv(
                stream,
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(column_types=types),
            )
    else:
        table = ds.dataset(where, filesystem=fs, format="parquet").to_table()
    if item_col not in table.column_names:
        raise ValueError(
            f"items {source}: no column {item_col!r} (columns: {', '.join(table.column_names)})"
        )
    keep = [item_col, *(c for c in META_COLUMNS if c in table.column_names)]
    table = table.select(keep).rename_columns(["item_id", *keep[1:]])
    return align_items(table, id_type) if id_type is not None else table


def align_items(items: pa.Table, id_type: pa.DataType) -> pa.Table:
    """Cast item_id to the run's type and title/category to string; drop rows without an id."""
    if "item_id" not in items.column_names:
        raise ValueError(f"items has no item_id column (columns: {', '.join(items.column_names)})")
    columns = {"item_id": items.column("item_id")}
    if columns["item_id"].type != id_type:
        try:
            columns["item_id"] = pc.cast(columns["item_id"], id_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"items item_id cannot be cast to the run's type {id_type}: {exc}"
            ) from exc
    for name in META_COLUMNS:
        if name in items.column_names:
            columns[name] = pc.cast(items.column(name), pa.string())
    table = pa.table(columns)
    return table.filter(pc.is_valid(table.column("item_id")))


def lookup_items(items: pa.Table | None, ids: pa.Array | pa.ChunkedArray) -> dict[Any, dict]:
    """Metadata rows for ``ids`` as {item_id: {"title": .., "category": ..}} (first row wins)."""
    if items is None or len(ids) == 0:
        return {}
    items = align_items(items, ids.type)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    subset = items.filter(pc.is_in(items.column("item_id"), value_set=ids))
    found: dict[Any, dict] = {}
    for row in subset.to_pylist():
        found.setdefault(row.pop("item_id"), row)
    return found


def item_label(item_id: Any, meta: dict | None, width: int = 28) -> str:
    """Short display label: the title when known, else the id."""
    text = str((meta or {}).get("title") or item_id)
    return text if len(text) <= width else text[: width - 1] + "…"


def neighbours_of(run_dir: str | Path, ids: pa.Array, k: int) -> dict[Any, list[dict]]:
    """Top-``k`` similar_items rows per item id, in rank order."""
    if len(ids) == 0:
        return {}
    expr = pc.field("item_id").isin(ids) & (pc.field("rank") <= k)
    table = read_table(run_dir, "similar_items", filter=expr)
    table = table.sort_by([("item_id", "ascending"), ("rank", "ascending")])
    result: dict[Any, list[dict]] = {}
    for row in table.select(["item_id", "rank", "similar_item_id", "score"]).to_pylist():
        result.setdefault(row["item_id"], []).append(row)
    return result
