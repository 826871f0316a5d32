"""Export vectors for the TensorBoard Embedding Projector, to explore neighbours interactively.

Point TensorBoard at the output directory (``tensorboard --logdir DIR``, Projector tab), or load
vectors.tsv and metadata.tsv into the standalone projector via its "Load" button.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from item2vec.report._run import META_COLUMNS, lookup_items, top_vectors

__all__ = ["export_projector"]

TENSOR_NAME = "item2vec"


def export_projector(
    run_dir: str, out_dir: str, *, items: pa.Table | None = None, top_n: int = 10000
) -> list[str]:
    """Write vectors.tsv, metadata.tsv and projector_config.pbtxt; returns the three paths.

    Only the ``top_n`` most frequent items are exported: the projector runs in the browser and
    becomes sluggish beyond a few tens of thousands of points.
    """
    table, vectors = top_vectors(run_dir, top_n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    vectors_path = out / "vectors.tsv"
    np.savetxt(vectors_path, vectors, fmt="%.6g", delimiter="\t")

    ids = table.column("item_id").combine_chunks()
    meta = lookup_items(items, ids)
    extra = [c for c in META_COLUMNS if items is not None and c in items.column_names]
    metadata_path = out / "metadata.tsv"
    freqs = table.column("frequency").to_pylist()
    with metadata_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(["item_id", "frequency", *extra]) + "\n")
        for item, freq in zip(ids.to_pylist(), freqs, strict=True):
            row = meta.get(item) or {}
            cells = [item, freq, *(row.get(c) for c in extra)]
            fh.write("\t".join(_cell(v) for v in cells) + "\n")

    config_path = out / "projector_config.pbtxt"
    config_path.write_text(
        "embeddings {\n"
        f'  tensor_name: "{TENSOR_NAME}"\n'
        f'  tensor_path: "{vectors_path.name}"\n'
        f'  metadata_path: "{metadata_path.name}"\n'
        "}\n",
        encoding="utf-8",
    )
    return [str(vectors_path), str(metadata_path), str(config_path)]


def _cell(value: object) -> str:
    """TSV-safe text: tabs and newlines would shift columns or rows."""
    if value is None:
        return ""
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)
