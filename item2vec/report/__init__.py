"""Optional run report: embedding map, self-contained HTML page, TensorBoard projector files.

Works on a published run directory (``<output>/dt=YYYY-MM-DD``) on the local filesystem with
pyarrow only; no Spark. The map needs the ``report`` extra (scikit-learn, matplotlib), imported
only when drawing::

    from item2vec.report import build_report, load_items
    paths = build_report("out/dt=2026-11-26", items=load_items("items.csv"))
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from item2vec.reader import check_run_dir
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
) -> dict[str, str]:
    """Write map.png, report.html and projector/ into ``out_dir`` (default ``run_dir/report``).

    ``items`` is a metadata table or a path for :func:`load_items`. ``top_n`` bounds the map
    only; the projector export keeps its own default (10,000 items). ``shown_path`` is the
    run location printed in the HTML (default ``run_dir``). Returns
    {"map", "html", "projector", "vectors", "metadata", "projector_config"} -> path.
    """
    check_run_dir(run_dir)  # before mkdir: a typo must not create a fake run directory
    if items is not None and not isinstance(items, pa.Table):
        items = load_items(items)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
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
