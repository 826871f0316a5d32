"""The optional report extra on a small synthetic run with 4 planted clusters."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from item2vec.report import build_report, load_items, write_report
from item2vec.report.embedding_map import layout_2d

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS, DIM, K = 200, 16, 10
CLUSTERS = ["books", "games", "garden", "music"]
METRICS = {
    "holdout": {"users": 500, "strategy": "last_item"},
    "models": {
        "item2vec": {"hr@10": 0.4123, "mrr@10": 0.2071, "ndcg@10": 0.2555, "coverage@10": 0.61},
        "popularity": {"hr@10": 0.1187, "mrr@10": 0.0466, "ndcg@10": 0.0633, "coverage@10": 0.05},
        "cooc_knn": {"hr@10": 0.3349, "mrr@10": 0.1702, "ndcg@10": 0.2089, "coverage@10": 0.48},
    },
}


def _write_dir(path: Path, table: pa.Table) -> None:
    path.mkdir(parents=True)
    pq.write_table(table, path / "part-00000.snappy.parquet")
    (path / "_SUCCESS").touch()


def make_run(out: Path) -> dict:
    """A published output root with one run (LATEST), plus a CSV of item titles/categories."""
    run_dir = out / "dt=2026-11-26"
    rng = np.random.default_rng(0)
    cluster = np.arange(N_ITEMS) % len(CLUSTERS)
    centres = rng.normal(size=(len(CLUSTERS), DIM)) * 3
    vectors = (centres[cluster] + rng.normal(size=(N_ITEMS, DIM))).astype(np.float32)
    ids = [f"i{n:04d}" for n in range(N_ITEMS)]
    freq = (1000 * 0.98 ** np.arange(N_ITEMS)).astype(np.int64) + 1
    index = np.arange(N_ITEMS, dtype=np.int32)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :K]
    _write_dir(
        run_dir / "vocabulary",
        pa.table({"item_id": ids, "item_index": index, "frequency": freq}),
    )
    _write_dir(
        run_dir / "item_vectors",
        pa.table(
            {
                "item_id": ids,
                "item_index": index,
                "frequency": freq,
                "vector": pa.array(list(vectors), pa.list_(pa.float32())),
            }
        ),
    )
    _write_dir(
        run_dir / "similar_items",
        pa.table(
            {
                "item_id": np.repeat(ids, K).tolist(),
                "rank": pa.array(np.tile(np.arange(1, K + 1), N_ITEMS), pa.int32()),
                "similar_item_id": [ids[j] for j in order.ravel()],
                "score": pa.array(np.take_along_axis(sims, order, 1).ravel(), pa.float32()),
            }
        ),
    )
    manifest = {
        "schema_version": 1,
        "run_date": "2026-11-26",
        "status": "published",
        "started_at": "2026-11-27T02:00:00Z",
        "finished_at": "2026-11-27T02:07:41Z",
        "config": {
            "input": {"path": "data/events.parquet", "item_col": "item_id"},
            "sessions": {"gap_minutes": 30, "min_length": 2},
            "model": {"vector_size": DIM, "window": 5, "min_count": 5, "seed": 42},
            "similar": {"k": K},
        },
        "counts": {
            "events_read": 1_250_000,
            "events_rejected": {"future_timestamp": 1200, "null_item": 340, "event_type": 9800},
            "sessions": 181_234,
            "tokens": 1_102_400,
            "vocabulary_size": N_ITEMS,
            "similar_rows": N_ITEMS * K,
        },
        "timings_s": {
            "read": 12.4,
            "sessions": 30.2,
            "train": 301.7,
            "similar": 88.1,
            "write": 9.3,
        },
        "spark_version": "4.3.0",
        "metrics": METRICS,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (run_dir / "_SUCCESS").touch()
    (out / "LATEST").write_text("dt=2026-11-26\n")

    items_csv = out.parent / "items.csv"
    with items_csv.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "title", "category", "price"])
        for n, item in enumerate(ids):
            name = CLUSTERS[cluster[n]]
            writer.writerow([item, f"{name.title()} item {n}", name, 9.99])
    return {
        "out": out,
        "run_dir": run_dir,
        "items_csv": items_csv,
        "ids": ids,
        "neighbours": {ids[i]: [ids[j] for j in order[i]] for i in range(N_ITEMS)},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_run(tmp_path_factory.mktemp("report") / "out")


@pytest.fixture(scope="module")
def report(run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out_dir = tmp_path_factory.mktemp("report_out")
    return build_report(
        str(run["run_dir"]), items=load_items(run["items_csv"]), out_dir=str(out_dir)
    )


def _png_size(path: str) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_map_png(report: dict[str, str]) -> None:
    width, height = _png_size(report["map"])
    assert 800 <= width <= 3000 and 600 <= height <= 2400
    assert Path(report["map"]).stat().st_size > 30_000  # a drawn map, not a blank canvas


def test_html_is_self_contained(report: dict[str, str], run: dict) -> None:
    html = Path(report["html"]).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "data:image/png;base64," in html
    assert "2026-11-26" in html and "published" in html
    for values in METRICS["models"].values():
        for value in values.values():
            assert f"{value:.4f}" in html
    for model in METRICS["models"]:
        assert model in html
    top = run["ids"][0]
    for neighbour in run["neighbours"][top][:K]:
        assert neighbour in html
    assert "Books item 0" in html  # titles come from the items CSV
    assert "1,250,000" in html and "future_timestamp" in html  # counts
    assert "301.7" in html  # timings
    assert "gap_minutes" in html  # config


def test_html_without_metrics_or_map(run: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "dt=2026-11-26"
    run_dir.mkdir()
    for name in ("vocabulary", "item_vectors", "similar_items"):
        (run_dir / name).symlink_to(run["run_dir"] / name, target_is_directory=True)
    manifest = json.loads((run["run_dir"] / "manifest.json").read_text())
    del manifest["metrics"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "_SUCCESS").touch()
    html = Path(write_report(str(run_dir), str(tmp_path / "r.html"), examples=2)).read_text()
    assert "Evaluation" not in html and "data:image" not in html
    assert run["neighbours"][run["ids"][1]][0] in html


def test_projector_files(report: dict[str, str], run: dict) -> None:
    vectors = Path(report["vectors"]).read_text().splitlines()
    assert len(vectors) == N_ITEMS
    assert all(len(line.split("\t")) == DIM for line in vectors)
    metadata = Path(report["metadata"]).read_text().splitlines()
    assert metadata[0] == "item_id\tfrequency\ttitle\tcategory"
    assert len(metadata) == N_ITEMS + 1
    assert metadata[1].startswith(run["ids"][0] + "\t")
    config = Path(report["projector_config"]).read_text()
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config


def test_layout_is_deterministic() -> None:
    vectors = np.random.default_rng(1).normal(size=(60, 64))
    first = layout_2d(vectors, seed=3)
    assert first.shape == (60, 2)
    np.testing.assert_array_equal(first, layout_2d(vectors, seed=3))
    assert layout_2d(vectors[:3]).shape == (3, 2)  # too few points for t-SNE: PCA


def test_load_items(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("sku,title\n007,Bond\n8,Eight\n")
    assert load_items(path, item_col="sku").column("item_id").to_pylist() == ["007", "8"]
    as_int = load_items(path, item_col="sku", id_type=pa.int64())
    assert as_int.column("item_id").to_pylist() == [7, 8]
    with pytest.raises(ValueError, match="no column 'item_id'"):
        load_items(path)


def _jobs_main():
    spec = importlib.util.spec_from_file_location("report_job", ROOT / "jobs" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_job_exit_codes(run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main = _jobs_main()
    assert main(["--run-dir", str(tmp_path / "missing")]) == 2
    assert main(["--output", str(tmp_path)]) == 2  # no LATEST
    assert "LATEST" in capsys.readouterr().err
    bad_col = ["--output", str(run["out"]), "--items", str(run["items_csv"]), "--item-col", "sku"]
    assert main(bad_col) == 2
    assert not (run["run_dir"] / "report").exists()  # nothing written on bad input
    out_dir = tmp_path / "rep"
    args = ["--output", str(run["out"]), "--items", str(run["items_csv"]), "--out", str(out_dir)]
    assert main([*args, "--top-n", "120", "--seed", "1"]) == 0
    assert (out_dir / "report.html").is_file() and (out_dir / "map.png").is_file()
    assert str(out_dir.resolve()) in capsys.readouterr().out
    assert main(["--help"]) == 0
