"""Optional run report: embedding map, metric trend, self-contained HTML page, TensorBoard
projector files.

Works on a complete run directory (``<output>/dt=YYYY-MM-DD/run=<run_id>``) with pyarrow only;
no Spark. The run may be local or on any store :mod:`item2vec.reader` can read (a URI, or a path
plus ``filesystem=``); for a non-local destination the files are drawn in a temporary local
directory and then uploaded. The map and the trend need the ``report`` extra (scikit-learn,
matplotlib), imported only when drawing::

    from item2vec.report import build_report, build_trend, load_items
    from item2vec.reader import latest_run
    paths = build_report(latest_run("out/"), items=load_items("items.csv"), trend_runs=30)
    build_trend("out/", out_dir="/tmp/trend", trend_runs=90)  # the trend alone
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from item2vec.reader import (
    FsPath,
    check_run_dir,
    is_local_location,
    local_dir,
    read_history,
    resolve,
    subpath,
)
from item2vec.report._run import EXTRA_HINT, load_items, load_manifest
from item2vec.report.embedding_map import draw_map
from item2vec.report.html import write_report, write_trend_page
from item2vec.report.projector import export_projector
from item2vec.report.trend import Trend, draw_trend, output_history, trend_data

__all__ = [
    "EXTRA_HINT",
    "Trend",
    "build_report",
    "build_trend",
    "draw_map",
    "draw_trend",
    "export_projector",
    "load_items",
    "output_history",
    "trend_data",
    "write_report",
    "write_trend_page",
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
    history: pa.Table | None = None,
    trend_runs: int | None = None,
) -> dict[str, str]:
    """Write map.png, trend.png, report.html and projector/ into ``out_dir`` (default
    ``run_dir/report``).

    ``items`` is a metadata table or a path for :func:`load_items`. ``top_n`` bounds the map
    only; the projector export keeps its own default (10,000 items). ``shown_path`` is the
    run location printed in the HTML (default ``run_dir``). ``filesystem`` (pyarrow or fsspec)
    is where ``run_dir`` and a default ``out_dir`` live when they are not local paths or URIs.
    ``history`` is the metric history to draw (HISTORY_SCHEMA); when None it is read from the
    output root ``run_dir`` belongs to. The trend shows the last ``trend_runs`` run dates up to
    this run's date (all when None); with fewer than two runs the page says so and no
    trend.png is written.
    Returns {"map", "html", "projector", "vectors", "metadata", "projector_config"[, "trend"]}
    -> location (a local path, or where the file was uploaded).
    """
    # before anything is written: a typo must not create a fake run directory
    run_dir = check_run_dir(run_dir, filesystem=filesystem)
    if items is not None and not isinstance(items, pa.Table):
        items = load_items(items)
    if history is None:
        history = output_history(run_dir)
    target = out_dir if out_dir is not None else subpath(run_dir, "report")
    options = {"top_n": top_n, "labelled": labelled, "seed": seed, "shown_path": shown_path,
               "history": history, "trend_runs": trend_runs}
    if is_local_location(target):
        out = local_dir(target)
        out.mkdir(parents=True, exist_ok=True)
        return _render(run_dir, out, items, **options)
    with tempfile.TemporaryDirectory(prefix="item2vec-report-") as tmp:
        paths = _render(run_dir, Path(tmp), items, **options)
        return _upload(Path(tmp), target, paths)


def build_trend(
    output: str,
    *,
    out_dir: str,
    trend_runs: int | None = None,
    history: pa.Table | None = None,
    until: str | None = None,
    filesystem: Any = None,
) -> dict[str, str]:
    """Write trend.png and trend.html (the trend alone) for the output root ``output`` into
    ``out_dir`` (a local path or URI).

    ``history`` defaults to the output's ``_metrics/``; run dates after ``until``
    (YYYY-MM-DD) are left out. With fewer than two runs trend.html holds a note and no
    trend.png is written. Returns {"html"[, "trend"]} -> location.
    """
    if history is None:
        history = read_history(output, filesystem=filesystem)
    shown = os.fspath(output)
    if is_local_location(out_dir):
        out = local_dir(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return _render_trend(out, history, trend_runs=trend_runs, until=until, shown=shown)
    with tempfile.TemporaryDirectory(prefix="item2vec-trend-") as tmp:
        paths = _render_trend(Path(tmp), history, trend_runs=trend_runs, until=until,
                              shown=shown)
        return _upload(Path(tmp), out_dir, paths)


def _render(run_dir: str, out: Path, items: pa.Table | None, *, top_n: int, labelled: int,
            seed: int, shown_path: str | None, history: pa.Table,
            trend_runs: int | None) -> dict[str, str]:
    map_png = draw_map(
        run_dir, str(out / "map.png"), items=items, top_n=top_n, labelled=labelled, seed=seed
    )
    run_date = load_manifest(run_dir).get("run_date")
    (out / "trend.png").unlink(missing_ok=True)  # a reused directory: no stale picture
    trend = draw_trend(history, str(out / "trend.png"), runs=trend_runs,
                       until=str(run_date) if run_date else None)
    html = write_report(run_dir, str(out / "report.html"), items=items, map_png=map_png,
                        shown_path=shown_path, trend=trend)
    vectors, metadata, config = export_projector(run_dir, str(out / "projector"), items=items)
    paths = {
        "map": map_png,
        "html": html,
        "projector": str(out / "projector"),
        "vectors": vectors,
        "metadata": metadata,
        "projector_config": config,
    }
    if trend.png:
        paths["trend"] = trend.png
    return paths


def _render_trend(out: Path, history: pa.Table, *, trend_runs: int | None, until: str | None,
                  shown: str) -> dict[str, str]:
    (out / "trend.png").unlink(missing_ok=True)
    trend: Trend = draw_trend(history, str(out / "trend.png"), runs=trend_runs, until=until)
    paths = {"html": write_trend_page(trend, str(out / "trend.html"), shown_path=shown)}
    if trend.png:
        paths["trend"] = trend.png
    return paths


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
