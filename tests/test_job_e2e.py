"""The whole job through main(): outputs checked against CONTRACT.md with pyarrow only."""

import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from item2vec import config, sample
from jobs.run import main

RUN_DATE = "2026-11-26"
# On a log this small the model's lead over popularity is thin; the gate has its own test.
SMALL = ["--set", "sample.users=800", "--set", "sample.items=300", "--set", "sample.categories=6",
         "--set", "evaluate.max_test_pairs=5000", "--set", "gate.min_lift_over_popularity=0"]


def _read(path: Path) -> pa.Table:
    return ds.dataset(str(path), format="parquet").to_table()


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "out"
    code = main(["--output", str(out), "--run-date", RUN_DATE, *SMALL])
    assert code == 0
    return out


def test_layout_latest_and_success(published):
    assert (published / "LATEST").read_text().strip() == f"dt={RUN_DATE}"
    run = published / f"dt={RUN_DATE}"
    for name in ("vocabulary", "item_vectors", "similar_items", "manifest.json", "_SUCCESS"):
        assert (run / name).exists(), name
    assert not list((published / "_staging").glob("*")) if (published / "_staging").exists() \
        else True
    assert not (published / "_LOCK").exists()


def test_schemas_are_plain_parquet_types(published):
    run = published / f"dt={RUN_DATE}"
    vocab, vectors, similar = (_read(run / n) for n in ("vocabulary", "item_vectors",
                                                        "similar_items"))
    assert vocab.schema.field("item_index").type == pa.int32()
    assert vocab.schema.field("frequency").type == pa.int64()
    vector_type = vectors.schema.field("vector").type
    assert pa.types.is_list(vector_type) and vector_type.value_type == pa.float32()
    assert similar.schema.field("rank").type == pa.int32()
    assert similar.schema.field("score").type == pa.float32()
    assert vocab.schema.field("item_id").type == pa.string()
    assert similar.schema.field("similar_item_id").type == pa.string()


def test_vocabulary_and_vectors_agree(published):
    run = published / f"dt={RUN_DATE}"
    vocab = _read(run / "vocabulary").sort_by("item_index")
    vectors = _read(run / "item_vectors").sort_by("item_index")
    v = vocab.num_rows
    assert vocab.column("item_index").to_pylist() == list(range(v))
    freq = vocab.column("frequency").to_numpy()
    assert np.all(np.diff(freq) <= 0)  # most frequent first
    assert vectors.column("item_id").to_pylist() == vocab.column("item_id").to_pylist()
    dims = {len(x) for x in vectors.column("vector").to_pylist()}
    assert dims == {config.load().train.vector_size}


def test_similar_items_invariants(published):
    run = published / f"dt={RUN_DATE}"
    v = _read(run / "vocabulary").num_rows
    sim = _read(run / "similar_items")
    k = min(config.load().similar.k, v - 1)
    assert sim.num_rows == v * k
    rows: dict = {}
    for item, rank, other, score in zip(*(sim.column(c).to_pylist() for c in
                                          ("item_id", "rank", "similar_item_id", "score")),
                                        strict=True):
        rows.setdefault(item, []).append((rank, other, score))
    assert len(rows) == v
    for item, lst in rows.items():
        lst.sort()
        assert [r for r, _, _ in lst] == list(range(1, k + 1))
        assert item not in [o for _, o, _ in lst]
        scores = [s for _, _, s in lst]
        assert all(a >= b for a, b in itertools.pairwise(scores))
        assert all(-1.0001 <= s <= 1.0001 for s in scores)


def test_manifest_has_the_contract_keys(published):
    m = json.loads((published / f"dt={RUN_DATE}" / "manifest.json").read_text())
    for key in ("schema_version", "run_date", "status", "started_at", "finished_at", "config",
                "counts", "timings_s", "spark_version", "metrics"):
        assert key in m, key
    assert m["status"] == "published" and m["run_date"] == RUN_DATE
    for key in ("events_read", "events_rejected", "sessions", "tokens", "vocabulary_size",
                "similar_rows"):
        assert key in m["counts"], key
    assert m["counts"]["similar_rows"] == _read(
        published / f"dt={RUN_DATE}" / "similar_items").num_rows
    assert m["config"]["sample"]["users"] == 800
    models = m["metrics"]["models"]
    assert set(models) == {"item2vec", "popularity", "cooc_knn"}
    metrics_file = published / f"dt={RUN_DATE}" / "metrics.json"
    assert json.loads(metrics_file.read_text()) == m["metrics"]
    assert 0 <= models["item2vec"]["hr@10"] <= 1
    # Every evaluation step is timed on its own, so a slow one shows in the manifest.
    for stage in ("eval split", "eval train", "eval item2vec top-k", "eval popularity",
                  "eval cooc_knn", "evaluate"):
        assert m["timings_s"][stage] >= 0, stage
    assert dt.datetime.fromisoformat(m["finished_at"].replace("Z", "+00:00"))


def test_planted_categories_are_learned(published):
    """Neighbours of frequent items share their category far more often than chance."""
    cfg = config.load(overrides=[a for a in SMALL if a != "--set"])
    end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    _, items = sample.generate(end=end, **vars(cfg.sample))
    category = dict(zip(items.column("item_id").to_pylist(),
                        items.column("category").to_pylist(), strict=True))
    run = published / f"dt={RUN_DATE}"
    vocab = _read(run / "vocabulary").sort_by("item_index")
    frequent = set(vocab.column("item_id").to_pylist()[:50])
    sim = _read(run / "similar_items")
    same = total = 0
    for item, rank, other in zip(*(sim.column(c).to_pylist() for c in
                                   ("item_id", "rank", "similar_item_id")), strict=True):
        if item in frequent and rank <= 10:
            same += category[item] == category[other]
            total += 1
    cats = np.array([category[i] for i in vocab.column("item_id").to_pylist()])
    _, counts = np.unique(cats, return_counts=True)
    chance = float(((counts / counts.sum()) ** 2).sum())
    purity = same / total
    print(f"neighbour purity {purity:.3f} vs chance {chance:.3f}")
    assert purity >= max(0.6, 3 * chance)


def test_rerun_same_date_replaces_the_partition(published):
    run = published / f"dt={RUN_DATE}"
    before = json.loads((run / "manifest.json").read_text())["run_id"]
    assert main(["--output", str(published), "--run-date", RUN_DATE, *SMALL,
                 "--set", "evaluate.enabled=false", "--set", "train.iterations=1"]) == 0
    after = json.loads((run / "manifest.json").read_text())
    assert after["run_id"] != before and "metrics" not in after
    assert sorted(p.name for p in published.iterdir() if p.name.startswith("dt=")) == [
        f"dt={RUN_DATE}"]
    assert not list((published / "_trash").glob("*")) if (published / "_trash").exists() \
        else True


def test_missing_input_column_exits_2_and_publishes_nothing(spark, tmp_path, capsys):
    src = tmp_path / "events.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": ["u"], "sku": ["a"], "timestamp": [1_700_000_000]}),
                   src)
    out = tmp_path / "out"
    assert main(["--input", str(src), "--output", str(out), "--run-date", RUN_DATE]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "'item_id' (input.item_col) not found" in errors[0]
    assert not (out / "LATEST").exists()
    assert not list(out.glob("dt=*"))


def test_quality_gate_failure_exits_3_keeps_the_run_and_leaves_latest(published):
    latest = (published / "LATEST").read_text()
    before = json.loads((published / f"dt={RUN_DATE}" / "manifest.json").read_text())["run_id"]
    code = main(["--output", str(published), "--run-date", "2026-11-27", *SMALL,
                 "--set", "gate.min_hr=0.99", "--set", "train.max_auto_passes=2"])
    assert code == 3
    assert (published / "LATEST").read_text() == latest
    assert not (published / "dt=2026-11-27").exists()
    kept = list((published / "_rejected").glob("dt=2026-11-27-*"))
    assert len(kept) == 1
    m = json.loads((kept[0] / "manifest.json").read_text())
    assert m["status"] == "rejected" and m["metrics"]["models"]["item2vec"]["hr@10"] < 0.99
    assert json.loads((published / f"dt={RUN_DATE}" / "manifest.json").read_text())[
        "run_id"] == before


def test_job_draws_the_report_into_the_published_run(spark, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    assert main(["--output", str(out), "--run-date", RUN_DATE, *SMALL,
                 "--set", "evaluate.enabled=false", "--set", "train.max_auto_passes=2",
                 "--set", "report.enabled=true", "--set", "report.top_n=100"]) == 0
    report = out / f"dt={RUN_DATE}" / "report"
    html = (report / "report.html").read_text()
    assert (report / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "projector" / "vectors.tsv").exists()
    assert str(out / f"dt={RUN_DATE}") in html and "_staging" not in html
