"""item2vec.reader and the examples of docs/consuming.md, against a hand-built published output.

The output is written with pyarrow only, in the published layout (two complete partitions with
LATEST on the second, plus a newer partition still being written), so these tests pin the
consumer side of the output contract independently of the Spark job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from item2vec.reader import (
    check_run_dir,
    latest_partition,
    read_item_vectors,
    read_manifest,
    read_similar_items,
    read_table,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "consuming.md"
LATEST_DT = "dt=2026-11-26"
ITEM = "sku-001"  # the item the docs examples look up
K = 5
DIM = 8


def write_run(
    run_dir: Path, ids: list, vectors: np.ndarray, *, k: int = K, success: bool = True
) -> dict:
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
    manifest = {
        "schema_version": 1,
        "run_date": run_dir.name.removeprefix("dt="),
        "status": "published",
        "counts": {"vocabulary_size": n, "similar_rows": n * rows},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    if success:
        (run_dir / "_SUCCESS").touch()
    return {"neighbours": {ids[i]: [ids[j] for j in order[i]] for i in range(n)}}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """out/ with dt=2026-11-25, dt=2026-11-26 (LATEST) and an incomplete dt=2026-11-27."""
    out = tmp_path_factory.mktemp("published") / "out"
    rng = np.random.default_rng(7)
    old_ids = [f"sku-{i:03d}" for i in range(1, 11)]
    write_run(out / "dt=2026-11-25", old_ids, rng.normal(size=(10, DIM)))
    ids = [f"sku-{i:03d}" for i in range(1, 13)]
    latest = write_run(out / LATEST_DT, ids, rng.normal(size=(12, DIM)))
    write_run(out / "dt=2026-11-27", ids, rng.normal(size=(12, DIM)), success=False)
    (out / "LATEST").write_text(LATEST_DT + "\n")  # readers must tolerate the newline
    return {"out": out, "ids": ids, "neighbours": latest["neighbours"]}


# --- reader -------------------------------------------------------------------------------------


def test_latest_partition_follows_latest_not_the_highest_dt(published: dict) -> None:
    assert Path(latest_partition(published["out"])) == published["out"] / LATEST_DT
    assert Path(latest_partition(str(published["out"]))).name == LATEST_DT


def test_latest_partition_errors(tmp_path: Path, published: dict) -> None:
    with pytest.raises(FileNotFoundError, match="no LATEST"):
        latest_partition(tmp_path)
    (tmp_path / "LATEST").write_text("dt=2026-11-27")
    with pytest.raises(FileNotFoundError, match="not found"):
        latest_partition(tmp_path)
    incomplete = published["out"] / "dt=2026-11-27"
    (tmp_path / "dt=2026-11-27").symlink_to(incomplete, target_is_directory=True)
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        latest_partition(tmp_path)
    (tmp_path / "LATEST").write_text("../elsewhere")
    with pytest.raises(FileNotFoundError, match="expected a partition"):
        latest_partition(tmp_path)
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        check_run_dir(incomplete)


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
    expected = write_run(out / LATEST_DT, ids, np.eye(4, DIM) + 0.1 * np.arange(4)[:, None])
    (out / "LATEST").write_text(LATEST_DT)
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
        read_table(published["out"] / LATEST_DT, "manifest")


# --- docs/consuming.md --------------------------------------------------------------------------


def _python_blocks() -> list[str]:
    return re.findall(
        r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
    )


def _block_id(code: str) -> str:
    for needle, name in (
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
        ["helper", "spark", "duckdb", "pandas", "pyarrow"]
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
    if kind in ("duckdb", "pandas"):
        pytest.importorskip(kind)
    if kind == "spark":
        request.getfixturevalue("spark")  # the example's getOrCreate() returns this session
    source = re.sub(r'^OUTPUT = "[^"]*"', f"OUTPUT = {str(published['out'])!r}", code, count=1)
    namespace: dict = {}
    exec(compile(source, f"{DOCS.name}[{kind}]", "exec"), namespace)
    assert _similar_ids(namespace["neighbours"]) == published["neighbours"][ITEM]
    assert _row_count(namespace["vectors"]) == len(published["ids"])
    if "matrix" in namespace:
        assert np.asarray(namespace["matrix"]).shape == (len(published["ids"]), DIM)
