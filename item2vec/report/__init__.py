"""Optional run report: embedding map, self-contained HTML page, TensorBoard projector files.

Works on a complete run directory (``<output>/dt=YYYY-MM-DD/run=<run_id>``) with pyarrow only;
no Spark. The run may be local or on any store :mod:`item2vec.reader` can read (a URI, or a path
plus ``filesystem=``); for a non-local destination the files are drawn in a temporary local
directory and then uploaded. The map needs the ``report`` extra (scikit-learn, matplotlib),
imported only when drawing::

    from item2vec.report import build_report, load_items
    from item2vec.reader import latest_run
    paths = build_report(latest_run("out/"), items=load_items("items.csv"))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from item2vec.reader import FsPath, check_run_dir, is_local_location, local_dir, resolve, subpath
from item2vec.report._run import EXTRA_HINT, load_items
from item2vec.report.embedding_map import draw_map
from item2vec.report.html import write_report
from item2vec.report.projector import export_projector

__all__ = [
    "EXTRA_HINT",
    "build_report",
    "draw_map",
    "export_projector",
    "load_items",
    "write_report",
]


def build_report(
    run_dir: str,
    *,
    items: pa.Table | str | os.PathLike[str] | None = None,
    out_dir: str | None = None,
    top_n: int = 2000,
    labelled: int = 6,
    seed: int = 0,
    shown_path: str | None = None,
    filesystem: Any = None,
) -> dict[str, str]:
    """Write map.png, report.html and projector/ into ``out_dir`` (default ``run_dir/report``).

    ``items`` is a metadata table or a path for :func:`load_items`. ``top_n`` bounds the map
    only; the projector export keeps its own default (10,000 items). ``shown_path`` is the
    run location printed in the HTML (default ``run_dir``). ``filesystem`` (pyarrow or fsspec)
    is where ``run_dir`` and a default ``out_dir`` live when they are not local paths or URIs.
    Returns {"map", "html", "projector", "vectors", "metadata", "projector_config"} ->
    location (a local path, or where the file was uploaded).
    """
    # before anything is written: a typo must not create a fake run directory
    run_dir = check_run_dir(run_dir, filesystem=filesystem)
    if items is not None and not isinstance(items, pa.Table):
        items = load_items(items)
    target = out_dir if out_dir is not None else subpath(run_dir, "report")
    if is_local_location(target):
        out = local_dir(target)
        out.mkdir(parents=True, exist_ok=True)
        return _render(run_dir, out, items, top_n=top_n, labelled=labelled, seed=seed,
                       shown_path=shown_path)
    with tempfile.TemporaryDirectory(prefix="item2vec-report-") as tmp:
        paths = _render(run_dir, Path(tmp), items, top_n=top_n, labelled=labelled, seed=seed,
                        shown_path=shown_path)
        return _upload(Path(tmp), target, paths)


def _render(run_dir: str, out: Path, items: pa.Table | None, *, top_n: int, labelled: int,
            seed: int, shown_path: str | None) -> dict[str, str]:
    map_png = draw_map(
        run_dir, str(out / "map.png"), items=items, top_n=top_n, labelled=labelled, seed=seed
    )
    html = write_report(run_dir, str(out / "report.html"), items=items, map_png=map_png,
                        shown_path=shown_path)
    vectors, metadata, config = export_projector(run_dir, str(out / "projector"), items=items)
    return {
        "map": map_png,
        "html": html,
        "projector": str(out / "projector"),
        "vectors": vectors,
        "metadata": metadata,
        "projector_config": config,
    }


def _upload(tmp: Path, target: str | FsPath, paths: dict[str, str]) -> dict[str, str]:
    """Copy the rendered files to ``target`` (a URI or FsPath); returns their new locations."""
    fs, base = resolve(target)
    fs.create_dir(base, recursive=True)  # a no-op on object stores
    for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = file.relative_to(tmp).as_posix()
        if "/" in rel:
            fs.create_dir(f"{base}/{rel.rsplit('/', 1)[0]}", recursive=True)
        with fs.open_output_stream(f"{base}/{rel}") as out:
            out.write(file.read_bytes())
    return {name: str(subpath(target, Path(path).relative_to(tmp).as_posix()))
            for name, path in paths.items()}
