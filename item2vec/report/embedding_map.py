"""A 2-D map of the embedding: do similar items end up close, do categories form regions?

Needs the report extra (scikit-learn, matplotlib); both are imported inside the functions so the
rest of the package works without them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from item2vec.report._run import (
    item_label,
    load_manifest,
    lookup_items,
    neighbours_of,
    require,
    top_vectors,
)

__all__ = ["draw_map", "layout_2d"]

PCA_DIMS = 50
MAX_CATEGORIES = 10
NEIGHBOUR_LINES = 3
# tab10 without its grey, which is reserved for "other".
_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
]
_OTHER = "#c7c7c7"


def layout_2d(vectors: np.ndarray, *, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates for (n, dim) vectors; deterministic for a given seed.

    Vectors are L2-normalised first, so euclidean distance ranks neighbours like the cosine
    similarity the job uses; PCA to 50 dims removes noise and speeds up t-SNE.
    """
    if method not in ("tsne", "umap"):
        raise ValueError(f"unknown method {method!r}; expected 'tsne' or 'umap'")
    decomposition = require("sklearn.decomposition")
    manifold = require("sklearn.manifold")
    threadpoolctl = require("threadpoolctl")  # installed with scikit-learn
    # One thread: bit-for-bit reproducible sums, and OpenMP's spinning threads made t-SNE 3-20x
    # slower on busy 2-core machines; single-threaded, 2000 items take ~10 s. The limit only
    # reaches libraries already loaded, hence the imports above.
    with threadpoolctl.threadpool_limits(limits=1):
        x = np.asarray(vectors, dtype=np.float64)
        return _layout(x, method, seed, decomposition, manifold)


def _layout(
    x: np.ndarray, method: str, seed: int, decomposition: ModuleType, manifold: ModuleType
) -> np.ndarray:
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    if n < 5:  # too few points for a neighbour embedding: a linear projection is honest enough
        k = min(2, n, x.shape[1])
        coords = decomposition.PCA(n_components=k, svd_solver="full").fit_transform(x)
        return np.pad(coords, ((0, 0), (0, 2 - k)))
    if x.shape[1] > PCA_DIMS:
        pca = decomposition.PCA(n_components=min(PCA_DIMS, n), svd_solver="full")
        x = pca.fit_transform(x)
    if method == "umap":
        try:
            import umap  # optional, not part of the report extra
        except ImportError as exc:
            raise ImportError("method='umap' needs umap-learn: pip install umap-learn") from exc
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        return reducer.fit_transform(x)
    tsne = manifold.TSNE(
        n_components=2,
        perplexity=min(30.0, (n - 1) / 3.0),
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    return tsne.fit_transform(x)


def draw_map(
    run_dir: str,
    out_png: str,
    *,
    items: pa.Table | None = None,
    top_n: int = 2000,
    labelled: int = 6,
    seed: int = 0,
    method: str = "tsne",
) -> str:
    """Draw the ``top_n`` most frequent items in 2-D and save a PNG; returns its path.

    Points are coloured by ``category`` when ``items`` has one (largest categories in the legend,
    the rest grey), else by frequency. The ``labelled`` most frequent items are named and joined
    to their top-3 neighbours from similar_items, so the plot can be checked against the output.
    """
    require("matplotlib")
    from matplotlib.figure import Figure

    manifest = load_manifest(run_dir)
    table, vectors = top_vectors(run_dir, top_n)
    if table.num_rows == 0:
        raise ValueError(f"{run_dir}: item_vectors is empty, nothing to draw")
    coords = layout_2d(vectors, method=method, seed=seed)
    ids = table.column("item_id").combine_chunks()
    id_list = ids.to_pylist()
    meta = lookup_items(items, ids)
    freq = table.column("frequency").to_numpy().astype(np.float64)
    log_freq = np.log10(np.maximum(freq, 1.0))
    span = max(float(log_freq.max() - log_freq.min()), 1e-9)
    sizes = 6.0 + 34.0 * (log_freq - log_freq.min()) / span

    fig = Figure(figsize=(11, 8.5), layout="constrained")
    ax = fig.add_subplot()
    categories = [(meta.get(i) or {}).get("category") for i in id_list]
    back = slice(None, None, -1)  # least frequent first, so frequent items are drawn on top
    if any(c is not None for c in categories):
        _scatter_by_category(ax, coords[back], sizes[back], categories[back])
    else:
        points = ax.scatter(
            coords[back, 0],
            coords[back, 1],
            s=sizes[back],
            c=log_freq[back],
            cmap="viridis",
            alpha=0.75,
            linewidths=0,
        )
        fig.colorbar(points, ax=ax, shrink=0.6, pad=0.01, label="log10 frequency")

    _draw_neighbours(ax, run_dir, coords, ids, id_list, meta, labelled)

    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#dddddd")
    fig.suptitle(_title(manifest), fontsize=14, fontweight="bold", x=0.01, ha="left")
    ax.set_title(
        _subtitle(manifest, table.num_rows, method, seed), fontsize=9.5, color="#555555", loc="left"
    )
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, facecolor="white", metadata={"Software": None})
    return str(out)


def _scatter_by_category(ax: Any, coords: np.ndarray, sizes: np.ndarray, categories: list) -> None:
    """Largest categories get colours and legend entries; the rest (and unknown) are grey."""
    counts = Counter(c for c in categories if c is not None)
    top = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES]]
    colour = dict(zip(top, _PALETTE, strict=False))
    keys = np.array([c if c in colour else "\0other" for c in categories], dtype=object)
    other = keys == "\0other"
    if other.any():
        ax.scatter(
            coords[other, 0],
            coords[other, 1],
            s=sizes[other],
            c=_OTHER,
            alpha=0.6,
            linewidths=0,
            label=f"other ({int(other.sum())})",
        )
    for name in top:
        mask = keys == name
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=sizes[mask],
            c=colour[name],
            alpha=0.8,
            linewidths=0,
            label=f"{name} ({int(mask.sum())})",
        )
    handles, labels = ax.get_legend_handles_labels()
    if other.any():  # "other" was drawn first (underneath) but reads best last
        handles, labels = handles[1:] + handles[:1], labels[1:] + labels[:1]
    ax.legend(
        handles,
        labels,
        title="category",
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize=8.5,
        title_fontsize=9,
        markerscale=1.5,
    )


def _draw_neighbours(
    ax: Any,
    run_dir: str,
    coords: np.ndarray,
    ids: pa.Array,
    id_list: list,
    meta: dict,
    labelled: int,
) -> None:
    """Name the most frequent items and draw lines to their nearest neighbours."""
    if labelled <= 0:
        return
    position = {item: row for row, item in enumerate(id_list)}
    anchors = id_list[:labelled]
    neighbours = neighbours_of(run_dir, ids.slice(0, len(anchors)), NEIGHBOUR_LINES)
    bbox = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8}
    for item in anchors:
        x0, y0 = coords[position[item]]
        for row in neighbours.get(item, []):
            target = position.get(row["similar_item_id"])
            if target is None:  # neighbour is outside the plotted top_n
                continue
            x1, y1 = coords[target]
            # Neighbours are ringed, not named: their labels would pile up on the anchor's.
            ax.plot([x0, x1], [y0, y1], color="#222222", lw=0.9, alpha=0.6, zorder=3)
            ax.scatter([x1], [y1], s=30, facecolors="none", edgecolors="#222222", lw=0.9, zorder=4)
        ax.scatter([x0], [y0], s=60, c="#111111", marker="*", zorder=6)
        ax.annotate(
            item_label(item, meta.get(item)),
            (x0, y0),
            xytext=(6, 5),
            textcoords="offset points",
            fontsize=8.5,
            fontweight="bold",
            bbox=bbox,
            zorder=7,
        )


def _title(manifest: dict) -> str:
    return f"item2vec embedding map · {manifest.get('run_date', '?')}"


def _subtitle(manifest: dict, shown: int, method: str, seed: int) -> str:
    counts = manifest.get("counts") or {}
    vocab = counts.get("vocabulary_size")
    if vocab == shown:
        parts = [f"all {shown:,} items"]
    elif isinstance(vocab, int):
        parts = [f"{shown:,} most frequent of {vocab:,} items"]
    else:
        parts = [f"{shown:,} most frequent items"]
    for key in ("sessions", "tokens"):
        if isinstance(counts.get(key), int):
            parts.append(f"{counts[key]:,} {key}")
    parts.append(f"{'t-SNE' if method == 'tsne' else method} (seed {seed})")
    parts.append("★ frequent items, lines to their top-3 neighbours")
    return " · ".join(parts)
