"""item2vec.reader and the examples of docs/consuming.md, against a hand-built published output.

The output is written with pyarrow only, in the published layout: runs under
``dt=YYYY-MM-DD/run=<run_id>/``, a ``CURRENT`` pointer per date, ``LATEST`` naming the run of
2026-11-26 while a re-run of that date and a run of 2026-11-27 are still being written (no
``_SUCCESS``), and the metric history under ``_metrics/``. So these tests pin the consumer side
of the output contract independently of the Spark job, on local paths, ``file://`` URIs and an
explicit pyarrow filesystem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from item2vec.publish import HISTORY_SCHEMA
from item2vec.reader import (
    FsPath,
    check_run_dir,
    latest_partition,
    latest_run,
    read_history,
    read_item_vectors,
    read_manifest,
    read_run_manifest,
    read_similar_items,
    read_table,
    run_for_date,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "consuming.md"
LATEST_DT = "dt=2026-11-26"
LATEST_RUN = f"{LATEST_DT}/run=20261127T021500-b2"
ITEM = "sku-001"  # the item the docs examples look up
K = 5
DIM = 8


def write_run(
    run_dir: Path, ids: list, vectors: np.ndarray, *, k: int = K, success: bool = True
) -> dict:  # run_dir: <output>/dt=…/run=<run_id> (or <output>/dt=… as older versions wrote)
    """Write one contract-shaped run (vocabulary, item_vectors, similar_items, manifest)."""
    n = len(ids)
    freq = np.arange(n, 0, -1, dtype=np.int64) * 10  # strictly decreasing: index 0 most frequent
    index = pa.array(np.arange(n, dtype=np.int32))
    id_array = pa.array(ids)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, n - 1)]
    rows = order.shape[1]
    tables = {
        "vocabulary": pa.table({"item_id": id_array, "item_index": index, "frequency": freq}),
        "item_vectors": pa.table(
            {
                "item_id": id_array,
                "item_index": index,
                "frequency": freq,
                "vector": pa.array(list(vectors.astype(np.float32)), pa.list_(pa.float32())),
            }
        ),
        "similar_items": pa.table(
            {
                "item_id": pa.array(np.repeat(ids, rows).tolist(), id_array.type),
                "rank": pa.array(np.tile(np.arange(1, rows + 1), n), pa.int32()),
                "similar_item_id": pa.array([ids[j] for j in order.ravel()], id_array.type),
                "score": pa.array(np.take_along_axis(sims, order, 1).ravel(), pa.float32()),
            }
        ),
    }
    for name, table in tables.items():
        (run_dir / name).mkdir(parents=True)
        # Two files per table, like Spark's part files, plus its _SUCCESS marker.
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), run_dir / name / "part-00000.snappy.parquet")
        pq.write_table(table.slice(half), run_dir / name / "part-00001.snappy.parquet")
        (run_dir / name / "_SUCCESS").touch()
    partition = run_dir if run_dir.name.startswith("dt=") else run_dir.parent
    manifest = {
        "schema_version": 1,
        "run_date": partition.name.removeprefix("dt="),
        "run_id": run_dir.name.removeprefix("run="),
        "status": "published",
        "counts": {"vocabulary_size": n, "similar_rows": n * rows},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    if success:
        (run_dir / "_SUCCESS").touch()
    return {"neighbours": {ids[i]: [ids[j] for j in order[i]] for i in range(n)}}


def history_row(run_date: str, model: str, hr: float) -> dict:
    return {"run_date": run_date, "run_id": f"r-{run_date}", "finished_at": f"{run_date}T03:00:00Z",
            "status": "published", "method": "holdout", "evaluated_run": None, "model": model,
            "pairs": 100, "hr_10": hr}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """out/ with runs of 2026-11-25 and 2026-11-26 (LATEST), an earlier run of 2026-11-26 that
    the re-run superseded, a re-run of 2026-11-26 and a run of 2026-11-27 still being written."""
    out = tmp_path_factory.mktemp("published") / "out"
    rng = np.random.default_rng(7)
    old_ids = [f"sku-{i:03d}" for i in range(1, 11)]
    write_run(out / "dt=2026-11-25" / "run=20261126T021500-a1", old_ids,
              rng.normal(size=(10, DIM)))
    (out / "dt=2026-11-25" / "CURRENT").write_text("run=20261126T021500-a1\n")
    ids = [f"sku-{i:03d}" for i in range(1, 13)]
    write_run(out / LATEST_DT / "run=20261127T020000-b1", ids, rng.normal(size=(12, DIM)))
    latest = write_run(out / LATEST_RUN, ids, rng.normal(size=(12, DIM)))
    (out / LATEST_DT / "CURRENT").write_text(LATEST_RUN.split("/")[1] + "\n")
    write_run(out / LATEST_DT / "run=20261127T090000-b3", ids, rng.normal(size=(12, DIM)),
              success=False)
    write_run(out / "dt=2026-11-27" / "run=20261128T021500-c1", ids, rng.normal(size=(12, DIM)),
              success=False)
    (out / "LATEST").write_text(LATEST_RUN + "\n")  # readers must tolerate the newline
    (out / "_metrics").mkdir()
    for day, hr in (("2026-11-25", 0.2), ("2026-11-26", 0.3)):
        rows = [history_row(day, "published", hr), history_row(day, "popularity", hr / 4)]
        pq.write_table(pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA),
                       out / "_metrics" / f"{day}_r-{day}.parquet")
    return {"out": out, "ids": ids, "neighbours": latest["neighbours"]}


# --- reader -------------------------------------------------------------------------------------


def test_latest_run_follows_latest_not_the_highest_directory(published: dict) -> None:
    out = published["out"]
    assert Path(latest_run(out)) == out / LATEST_RUN
    assert latest_run(str(out)) == str(out / LATEST_RUN)
    assert latest_partition(out) == latest_run(out)  # the name older code uses
    assert read_manifest(out)["run_id"] == "20261127T021500-b2"


def test_latest_run_errors(tmp_path: Path, published: dict) -> None:
    with pytest.raises(FileNotFoundError, match="no LATEST"):
        latest_run(tmp_path)
    (tmp_path / "LATEST").write_text("dt=2026-11-27")
    with pytest.raises(FileNotFoundError, match="not found"):
        latest_run(tmp_path)
    incomplete = published["out"] / "dt=2026-11-27"
    (tmp_path / "dt=2026-11-27").symlink_to(incomplete, target_is_directory=True)
    (tmp_path / "LATEST").write_text("dt=2026-11-27/run=20261128T021500-c1")
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        latest_run(tmp_path)
    for bad in ("../elsewhere", "dt=2026-11-26/run=../../x", "dt=2026-11-26/other=1"):
        (tmp_path / "LATEST").write_text(bad)
        with pytest.raises(FileNotFoundError, match="expected a partition"):
            latest_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        check_run_dir(incomplete / "run=20261128T021500-c1")
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):  # the re-run still being written
        check_run_dir(published["out"] / LATEST_DT / "run=20261127T090000-b3")


def test_outputs_of_older_versions_are_read(tmp_path: Path) -> None:
    """LATEST holding just "dt=…", the datasets directly in the partition."""
    out = tmp_path / "out"
    expected = write_run(out / LATEST_DT, ["a", "b", "c"], np.eye(3, DIM) + 0.1)
    (out / "LATEST").write_text(LATEST_DT + "\n")
    assert latest_run(out) == str(out / LATEST_DT)
    assert run_for_date(out, "2026-11-26") == str(out / LATEST_DT)
    got = read_similar_items(out, item_id="a").column("similar_item_id").to_pylist()
    assert got == expected["neighbours"]["a"]


def test_run_for_date_follows_the_date_pointer(published: dict) -> None:
    out = published["out"]
    assert run_for_date(out, "2026-11-25") == str(out / "dt=2026-11-25/run=20261126T021500-a1")
    assert run_for_date(out, "2026-11-26") == str(out / LATEST_RUN)
    with pytest.raises(FileNotFoundError, match="no run published for 2026-11-27"):
        run_for_date(out, "2026-11-27")


def test_file_uris(published: dict) -> None:
    uri = "file://" + str(published["out"])
    assert latest_run(uri) == f"{uri}/{LATEST_RUN}"
    assert latest_run(uri + "/") == f"{uri}/{LATEST_RUN}"
    one = read_similar_items(uri, item_id=ITEM)
    assert one.column("similar_item_id").to_pylist() == published["neighbours"][ITEM]
    assert read_item_vectors(uri).num_rows == len(published["ids"])
    assert read_manifest(uri)["run_date"] == "2026-11-26"
    assert read_table(latest_run(uri), "vocabulary").num_rows == len(published["ids"])
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        check_run_dir(f"{uri}/dt=2026-11-27/run=20261128T021500-c1")
    assert read_history(uri).num_rows == 4


def test_an_explicit_pyarrow_filesystem(published: dict) -> None:
    """Paths relative to a filesystem (here a SubTreeFileSystem: the same calls work with an
    S3FileSystem(endpoint_override=...) or an fsspec filesystem); the locations returned
    remember their filesystem."""
    fs = pafs.SubTreeFileSystem(str(published["out"].parent), pafs.LocalFileSystem())
    run = latest_run("out", filesystem=fs)
    assert isinstance(run, FsPath) and run == f"out/{LATEST_RUN}" and run.filesystem is fs
    assert read_run_manifest(run)["run_id"] == "20261127T021500-b2"  # no filesystem= needed
    assert read_table(run, "item_vectors").num_rows == len(published["ids"])
    one = read_similar_items("out", item_id=ITEM, filesystem=fs)
    assert one.column("similar_item_id").to_pylist() == published["neighbours"][ITEM]
    assert run_for_date("out", "2026-11-25", filesystem=fs) == \
        "out/dt=2026-11-25/run=20261126T021500-a1"
    with pytest.raises(FileNotFoundError, match="no LATEST"):
        latest_run("elsewhere", filesystem=fs)


def test_read_history(published: dict) -> None:
    history = read_history(published["out"])
    assert history.schema == HISTORY_SCHEMA
    assert history.select(["run_date", "model", "hr_10"]).to_pylist() == [
        {"run_date": "2026-11-25", "model": "popularity", "hr_10": 0.05},
        {"run_date": "2026-11-25", "model": "published", "hr_10": 0.2},
        {"run_date": "2026-11-26", "model": "popularity", "hr_10": 0.075},
        {"run_date": "2026-11-26", "model": "published", "hr_10": 0.3}]


def test_the_report_is_uploaded_to_a_run_on_another_filesystem(published: dict,
                                                                tmp_path: Path) -> None:
    """A run that is not on local disk: the report is drawn in a temporary directory and its
    files are uploaded into <run>/report/ through the run's filesystem."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    import shutil

    from item2vec.report import build_report

    shutil.copytree(published["out"], tmp_path / "out")
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    paths = build_report(latest_run("out", filesystem=fs), top_n=12, labelled=2)
    report = tmp_path / "out" / LATEST_RUN / "report"
    assert paths["html"] == f"out/{LATEST_RUN}/report/report.html"
    assert sorted(str(p.relative_to(report)) for p in report.rglob("*") if p.is_file()) == [
        "map.png", "projector/metadata.tsv", "projector/projector_config.pbtxt",
        "projector/vectors.tsv", "report.html", "trend.png"]
    assert (report / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sku-001" in (report / "report.html").read_text()


def test_read_similar_items(published: dict) -> None:
    table = read_similar_items(published["out"])
    assert table.num_rows == len(published["ids"]) * K
    assert table.column_names[:4] == ["item_id", "rank", "similar_item_id", "score"]
    first = table.slice(0, K)
    assert first.column("item_id").to_pylist() == [ITEM] * K
    assert first.column("rank").to_pylist() == list(range(1, K + 1))

    one = read_similar_items(published["out"], item_id=ITEM)
    assert one.column("similar_item_id").to_pylist() == published["neighbours"][ITEM]
    scores = one.column("score").to_pylist()
    assert scores == sorted(scores, reverse=True)
    assert read_similar_items(published["out"], item_id="no-such-item").num_rows == 0


def test_read_similar_items_casts_the_id_to_the_column_type(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = [101, 102, 103, 104]
    expected = write_run(out / LATEST_RUN, ids, np.eye(4, DIM) + 0.1 * np.arange(4)[:, None])
    (out / "LATEST").write_text(LATEST_RUN)
    got = read_similar_items(out, item_id="102").column("similar_item_id").to_pylist()
    assert got == expected["neighbours"][102]
    assert read_similar_items(out, item_id=102).num_rows == 3
    with pytest.raises(ValueError, match="cannot be cast"):
        read_similar_items(out, item_id="abc")


def test_read_item_vectors_and_manifest(published: dict) -> None:
    vectors = read_item_vectors(published["out"])
    assert vectors.column("item_id").to_pylist() == published["ids"]
    assert vectors.column("item_index").to_pylist() == list(range(len(published["ids"])))
    assert vectors.schema.field("vector").type == pa.list_(pa.float32())
    assert {len(v) for v in vectors.column("vector").to_pylist()} == {DIM}
    manifest = read_manifest(published["out"])
    assert manifest["run_date"] == "2026-11-26"
    assert manifest["status"] == "published"


def test_read_table_rejects_unknown_tables(published: dict) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        read_table(published["out"] / LATEST_RUN, "manifest")


# --- docs/consuming.md --------------------------------------------------------------------------


def _python_blocks() -> list[str]:
    return re.findall(
        r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
    )


def _block_id(code: str) -> str:
    for needle, name in (
        ("_metrics", "history"),
        ("item2vec.reader", "helper"),
        ("SparkSession", "spark"),
        ("duckdb", "duckdb"),
        ("pandas", "pandas"),
        ("pyarrow", "pyarrow"),
    ):
        if needle in code:
            return name
    return "other"


BLOCKS = _python_blocks()


def test_docs_cover_every_client() -> None:
    assert sorted(_block_id(code) for code in BLOCKS) == sorted(
        ["helper", "spark", "duckdb", "pandas", "pyarrow", "history"]
    )
    for code in BLOCKS:
        assert re.match(r'OUTPUT = "[^"]*"', code), "each example starts with OUTPUT = ..."


def _similar_ids(result: object) -> list:
    """similar_item_id values, in order, from whatever the example produced."""
    if isinstance(result, pa.Table):
        return result.column("similar_item_id").to_pylist()
    if isinstance(result, list):  # DuckDB fetchall(): (rank, similar_item_id, score) tuples
        return [row[1] for row in result]
    if hasattr(result, "collect"):  # Spark DataFrame
        return [row["similar_item_id"] for row in result.collect()]
    return list(result["similar_item_id"])  # pandas


def _row_count(result: object) -> int:
    if hasattr(result, "collect"):
        return result.count()
    return len(result)


@pytest.mark.parametrize("code", BLOCKS, ids=[_block_id(c) for c in BLOCKS])
def test_docs_example_runs(code: str, published: dict, request: pytest.FixtureRequest) -> None:
    kind = _block_id(code)
    if kind in ("duckdb", "pandas", "history"):
        pytest.importorskip("duckdb" if kind == "history" else kind)
    if kind == "spark":
        request.getfixturevalue("spark")  # the example's getOrCreate() returns this session
    source = re.sub(r'^OUTPUT = "[^"]*"', f"OUTPUT = {str(published['out'])!r}", code, count=1)
    namespace: dict = {}
    exec(compile(source, f"{DOCS.name}[{kind}]", "exec"), namespace)
    if kind == "history":
        trend = namespace["trend"]
        assert [(r[0], r[1]) for r in trend] == [("2026-11-25", 0.2), ("2026-11-26", 0.3)]
        assert namespace["history"].num_rows == 4
        return
    assert _similar_ids(namespace["neighbours"]) == published["neighbours"][ITEM]
    assert _row_count(namespace["vectors"]) == len(published["ids"])
    if "matrix" in namespace:
        assert np.asarray(namespace["matrix"]).shape == (len(published["ids"]), DIM)


def test_report_job_on_a_uri(published: dict, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    import shutil

    from jobs.report import main

    shutil.copytree(published["out"], tmp_path / "out")
    assert main(["--output", f"file://{tmp_path}/out", "--top-n", "12", "--labelled", "2"]) == 0
    report = tmp_path / "out" / LATEST_RUN / "report"
    assert (report / "report.html").is_file() and (report / "projector" / "vectors.tsv").is_file()
    assert f"html       {report / 'report.html'}" in capsys.readouterr().out
    assert main(["--run-dir", f"file://{tmp_path}/out/dt=2026-11-27/run=20261128T021500-c1"]) == 2
    assert "no _SUCCESS marker" in capsys.readouterr().err
