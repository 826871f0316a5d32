"""The optional report extra on a small synthetic run with 4 planted clusters."""

from __future__ import annotations

import base64
import csv
import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


# -- metric trend ---------------------------------------------------------------------------
BASELINES = {"embedding": 0.30, "cooc_knn": 0.25, "sequential_rules": 0.20, "popularity": 0.05}


def _rows(date: str, run_id: str, *, status: str = "published", method: str = "previous_run",
          hr: float = 0.40, validation: float | None = 0.50, at: str = "02:00:00") -> list[dict]:
    """History rows of one run: the published list and the baselines, plus validation."""
    base = {"run_date": date, "run_id": run_id, "status": status, "pairs": 100,
            "finished_at": f"{date}T{at}Z",
            "evaluated_run": "dt=x/run=y" if method == "previous_run" else None}
    rows = [{**base, "method": method, "model": "published", "hr_10": hr, "mrr_10": hr / 2}]
    rows += [{**base, "method": method, "model": m, "hr_10": v, "mrr_10": v / 2}
             for m, v in BASELINES.items()]
    if validation is not None:
        rows.append({**base, "method": "validation", "model": "published", "evaluated_run": None,
                     "hr_10": validation, "mrr_10": validation / 2})
    return rows


def make_history() -> pa.Table:
    """Six run dates: a holdout first night, re-runs of 11-22 (both published) and 11-23
    (rejected, then published), a rejected-only 11-25 and a run after 11-26."""
    from item2vec.publish import HISTORY_SCHEMA

    rows = (
        _rows("2026-11-20", "r20", method="holdout", hr=0.35, validation=0.48)
        + _rows("2026-11-21", "r21", hr=0.41, validation=0.50)
        + _rows("2026-11-22", "r22a", hr=0.10, validation=0.10, at="01:00:00")
        + _rows("2026-11-22", "r22b", hr=0.42, validation=0.51, at="03:00:00")
        + _rows("2026-11-23", "r23a", status="rejected", hr=0.20, validation=0.30)
        + _rows("2026-11-23", "r23b", hr=0.43, validation=0.52, at="05:00:00")
        + _rows("2026-11-25", "r25", status="rejected", hr=0.15, validation=0.49)
        + _rows("2026-11-26", "r26", hr=0.44, validation=None)
        + _rows("2026-11-27", "r27", hr=0.45, validation=0.53)
    )
    return pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA)


def _points(series) -> list[tuple[str, str, float]]:
    return [(p.run_date, p.run_id, p.hr_10) for p in series.points]


def test_trend_data_series_runs_and_rejections() -> None:
    from item2vec.report.trend import trend_data

    trend = trend_data(make_history(), runs=5, until="2026-11-26")
    assert trend.note is None
    assert [(r.run_date, r.run_id, r.status) for r in trend.runs] == [
        ("2026-11-21", "r21", "published"),
        ("2026-11-22", "r22b", "published"),  # the later re-run of the date
        ("2026-11-23", "r23a", "rejected"),
        ("2026-11-23", "r23b", "published"),
        ("2026-11-25", "r25", "rejected"),
        ("2026-11-26", "r26", "published"),
    ]  # 5 run dates up to 11-26: 11-20 (holdout) and 11-27 are outside
    assert [(s.method, s.model) for s in trend.series] == [
        ("previous_run", "published"), ("previous_run", "embedding"),
        ("previous_run", "cooc_knn"), ("previous_run", "sequential_rules"),
        ("previous_run", "popularity"), ("validation", "published"),
    ]
    assert _points(trend.get("previous_run")) == [
        ("2026-11-21", "r21", 0.41), ("2026-11-22", "r22b", 0.42),
        ("2026-11-23", "r23b", 0.43), ("2026-11-26", "r26", 0.44)]
    assert [p.mrr_10 for p in trend.get("previous_run").points] == [0.205, 0.21, 0.215, 0.22]
    assert _points(trend.get("validation")) == [
        ("2026-11-21", "r21", 0.50), ("2026-11-22", "r22b", 0.51), ("2026-11-23", "r23b", 0.52)]
    assert [(s.method, s.model, _points(s)) for s in trend.rejected] == [
        ("previous_run", "published", [("2026-11-23", "r23a", 0.20), ("2026-11-25", "r25", 0.15)]),
        ("validation", "published", [("2026-11-23", "r23a", 0.30), ("2026-11-25", "r25", 0.49)]),
    ]

    everything = trend_data(make_history())
    assert _points(everything.get("holdout")) == [("2026-11-20", "r20", 0.35)]  # own series
    assert everything.get("holdout", "popularity").points[0].hr_10 == 0.05
    assert everything.runs[-1].run_id == "r27"


def test_trend_data_bad_history_names_the_column() -> None:
    from item2vec.report.trend import trend_data

    with pytest.raises(ValueError, match="lacks column\\(s\\) method"):
        trend_data(make_history().drop_columns(["method"]))


def test_draw_trend_writes_a_png(tmp_path: Path) -> None:
    from item2vec.report.trend import draw_trend, trend_data

    history = make_history()
    trend = draw_trend(history, str(tmp_path / "t" / "trend.png"), runs=30)
    assert trend.png == str(tmp_path / "t" / "trend.png")
    width, height = _png_size(trend.png)
    assert 1000 <= width <= 2000 and 600 <= height <= 1200
    assert Path(trend.png).stat().st_size > 20_000  # lines and legends, not an empty canvas
    assert (trend.series, trend.rejected) == (trend_data(history).series,
                                              trend_data(history).rejected)


def test_trend_note_with_one_run_or_none(tmp_path: Path) -> None:
    from item2vec.publish import HISTORY_SCHEMA
    from item2vec.report.trend import draw_trend

    one = pa.Table.from_pylist(_rows("2026-11-20", "r20"), schema=HISTORY_SCHEMA)
    for history, shown in ((one, "1"), (pa.table({}), "none")):
        trend = draw_trend(history, str(tmp_path / "trend.png"))
        assert trend.png is None and not (tmp_path / "trend.png").exists()
        assert trend.note == ("The metric trend needs at least two runs with metrics; this "
                              f"output has {shown} so far.")


def _run_layout(run: dict, root: Path, run_date: str, run_id: str) -> Path:
    """A run directory <root>/dt=<date>/run=<id> sharing the module run's datasets."""
    run_dir = root / f"dt={run_date}" / f"run={run_id}"
    run_dir.mkdir(parents=True)
    for name in ("vocabulary", "item_vectors", "similar_items"):
        (run_dir / name).symlink_to(run["run_dir"] / name, target_is_directory=True)
    manifest = json.loads((run["run_dir"] / "manifest.json").read_text())
    manifest["run_date"] = run_date
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "_SUCCESS").touch()
    return run_dir


def test_report_embeds_the_trend_of_the_history_passed(run: dict, tmp_path: Path) -> None:
    run_dir = _run_layout(run, tmp_path / "out", "2026-11-26", "r26")
    paths = build_report(str(run_dir), out_dir=str(tmp_path / "rep"), top_n=20,
                         history=make_history(), trend_runs=5)
    assert paths["trend"] == str(tmp_path / "rep" / "trend.png")
    _png_size(paths["trend"])
    html = Path(paths["html"]).read_text(encoding="utf-8")
    data = base64.b64encode(Path(paths["trend"]).read_bytes()).decode("ascii")
    assert f'<img src="data:image/png;base64,{data}"' in html
    assert "Metric trend" in html and "previous_run" in html and "validation" in html
    assert '<tr class="rejected"><td>2026-11-25</td><td><code>r25</code>' in html
    assert "The 6 runs drawn" in html
    # after this run's date; superseded by a later re-run of its date
    assert "<code>r27</code>" not in html and "<code>r22a</code>" not in html
    assert "<code>r22b</code>" in html


def test_report_reads_the_history_of_its_output(run: dict, tmp_path: Path) -> None:
    """history=None: the run's output root is found from dt=.../run=..., on a filesystem."""
    import pyarrow.fs as pafs

    root = tmp_path / "out"
    _run_layout(run, root, "2026-11-22", "r22b")
    (root / "_metrics").mkdir()
    history = make_history()
    for run_id in ("r21", "r22b", "r23b"):  # one file per run, as the publisher writes them
        rows = history.filter(pc.equal(history.column("run_id"), run_id))
        pq.write_table(rows, root / "_metrics" / f"{run_id}.parquet")
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    paths = build_report("out/dt=2026-11-22/run=r22b", filesystem=fs, top_n=20)
    report_dir = root / "dt=2026-11-22" / "run=r22b" / "report"
    assert paths["trend"] == "out/dt=2026-11-22/run=r22b/report/trend.png"
    _png_size(str(report_dir / "trend.png"))
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "The 2 runs drawn" in html
    assert "<code>r21</code>" in html and "<code>r22b</code>" in html
    assert "<code>r23b</code>" not in html  # after the run's date


def test_report_with_one_run_has_a_note(run: dict, tmp_path: Path) -> None:
    from item2vec.publish import HISTORY_SCHEMA

    run_dir = _run_layout(run, tmp_path / "out", "2026-11-20", "r20")
    one = pa.Table.from_pylist(_rows("2026-11-20", "r20"), schema=HISTORY_SCHEMA)
    paths = build_report(str(run_dir), out_dir=str(tmp_path / "rep"), top_n=20, history=one)
    assert "trend" not in paths and not (tmp_path / "rep" / "trend.png").exists()
    html = Path(paths["html"]).read_text(encoding="utf-8")
    assert "needs at least two runs with metrics; this output has 1 so far" in html


def test_trend_only_command(run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from jobs.report import main

    root = tmp_path / "out"
    (root / "_metrics").mkdir(parents=True)
    pq.write_table(make_history(), root / "_metrics" / "all.parquet")
    out_dir = tmp_path / "trend"
    args = ["--output", str(root), "--trend-only", "--out", str(out_dir)]
    assert main([*args, "--trend-runs", "3"]) == 0
    _png_size(str(out_dir / "trend.png"))
    html = (out_dir / "trend.html").read_text(encoding="utf-8")
    data = base64.b64encode((out_dir / "trend.png").read_bytes()).decode("ascii")
    assert f"data:image/png;base64,{data}" in html
    assert "The 3 runs drawn" in html
    assert "<code>r27</code>" in html and "<code>r23b</code>" not in html
    assert str((out_dir / "trend.html").resolve()) in capsys.readouterr().out
    assert not list(root.glob("dt=*"))  # nothing written into the output

    assert main(["--output", str(root), "--trend-only"]) == 2  # where to?
    assert "--trend-only needs --out" in capsys.readouterr().err
    assert main(["--output", str(tmp_path / "nothing"), "--trend-only", "--out",
                 str(tmp_path / "x")]) == 2
    assert "no _metrics/ and no LATEST" in capsys.readouterr().err
    assert main([*args, "--trend-runs", "1"]) == 2  # a trend needs two dates
    assert main(["--help"]) == 0
    assert "--trend-only" in capsys.readouterr().out
