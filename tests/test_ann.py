"""Approximate (HNSW) top-k: same contract as the exact path, high recall, exact fallback."""

import json

import numpy as np
import pytest

from item2vec import ann, config
from item2vec.errors import BadInput
from item2vec.similar import normalize, top_k_block, top_k_similar

faiss = pytest.importorskip("faiss")

PARAMS = ann.HnswParams(m=16, ef_construction=64, ef_search=64)


def _clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    return (centres[rng.integers(0, clusters, n)]
            + rng.standard_normal((n, dim)).astype(np.float32))


def _arrays(df):
    t = df.toArrow().sort_by([("item_index", "ascending"), ("rank", "ascending")])
    return tuple(t.column(c).to_numpy() for c in ("item_index", "rank", "similar_index", "score"))


def test_hnsw_output_keeps_the_contract_with_exact_scores(spark):
    v, k = 400, 7
    m = _clustered(v, 16, 8)
    item, rank, other, score = _arrays(top_k_similar(
        spark, m, k=k, block_bytes=1 << 20, partitions=2, search="hnsw", hnsw=PARAMS))
    assert len(item) == v * k
    assert np.array_equal(item, np.repeat(np.arange(v), k))
    assert np.array_equal(rank, np.tile(np.arange(1, k + 1), v))
    assert not np.any(item == other)
    per_item = score.reshape(v, k)
    assert np.all(np.diff(per_item, axis=1) <= 0)
    assert all(len(set(row)) == k for row in other.reshape(v, k))
    n = normalize(m)
    assert np.allclose(score, np.einsum("nd,nd->n", n[item], n[other]), atol=1e-5)


def test_hnsw_recall_at_10_against_exact(spark):
    m = _clustered(3000, 32, 30, seed=1)
    hnsw = _arrays(top_k_similar(spark, m, k=10, block_bytes=1 << 22, search="hnsw",
                                 hnsw=PARAMS))[2].reshape(-1, 10)
    exact = _arrays(top_k_similar(spark, m, k=10, block_bytes=1 << 22))[2].reshape(-1, 10)
    hits = sum(len(set(a) & set(b)) for a, b in zip(hnsw, exact, strict=True))
    recall = hits / exact.size
    print(f"recall@10 {recall:.4f}")
    assert recall >= 0.95


def test_hnsw_is_deterministic_and_handles_tiny_vocabularies(spark):
    m = _clustered(60, 8, 3, seed=2)
    kw = {"k": 5, "block_bytes": 1 << 20, "search": "hnsw", "hnsw": PARAMS}
    first = _arrays(top_k_similar(spark, m, partitions=1, **kw))
    again = _arrays(top_k_similar(spark, m, partitions=2, **kw))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    two = _arrays(top_k_similar(spark, m[:2], **kw))  # V = 2: one neighbour each
    assert two[2].tolist() == [1, 0] and two[1].tolist() == [1, 1]
    assert ann.build_index(normalize(m), PARAMS).tobytes() == \
        ann.build_index(normalize(m), PARAMS).tobytes()


def test_rows_the_graph_cannot_fill_fall_back_to_exact():
    n = normalize(_clustered(200, 8, 4, seed=3))
    q = np.array([0, 5, 9], dtype=np.int32)
    want_idx, want_val = top_k_block(q, n[q], n, 4)
    cand = np.full((3, 5), -1, dtype=np.int64)
    cand[0] = np.r_[0, want_idx[0]]  # itself plus the true top 4: complete
    cand[1, :3] = want_idx[1, :3]  # only 3 valid ids: short
    cand[2] = [9, 9, -1, -1, -1]  # only itself: short
    idx, vals, short = ann.select_top_k(q, cand, n, 4)
    assert short.tolist() == [1, 2]
    assert idx[0].tolist() == want_idx[0].tolist()
    assert np.allclose(vals[0], want_val[0], atol=1e-6)

    class Stub:  # an index whose graph returns nothing: every row is answered exactly
        def search(self, queries, width):
            return np.full((len(queries), width), -1, dtype=np.int64)

    from item2vec.similar import _approximate_block

    idx, vals = _approximate_block(Stub(), q, n, 4, exact_rows=2)
    assert np.array_equal(idx, want_idx) and np.allclose(vals, want_val)


def test_a_real_index_with_a_tiny_beam_still_fills_every_row(spark):
    """ef_search below k: faiss may pad with -1; the fallback keeps min(k, V-1) rows."""
    m = _clustered(300, 8, 2, seed=4)
    tiny = ann.HnswParams(m=4, ef_construction=8, ef_search=1)
    item, rank, other, score = _arrays(top_k_similar(
        spark, m, k=40, block_bytes=1 << 20, search="hnsw", hnsw=tiny))
    assert len(item) == 300 * 40 and not np.any(item == other)
    assert np.array_equal(rank, np.tile(np.arange(1, 41), 300))
    assert np.all(np.diff(score.reshape(300, 40), axis=1) <= 0)


@pytest.mark.parametrize(("override", "message"), [
    ("similar.search=annoy", "similar.search: expected one of exact, hnsw"),
    ("similar.hnsw_m=2", "similar.hnsw_m: expected a value >= 4"),
    ("similar.hnsw_ef_construction=0", "similar.hnsw_ef_construction: expected a value >= 8"),
    ("similar.hnsw_ef_search=1.5", "similar.hnsw_ef_search: expected int"),
])
def test_bad_hnsw_config_is_rejected_with_the_key_named(override, message):
    with pytest.raises(BadInput) as err:
        config.load(overrides=[override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_library_fails_fast_with_the_install_hint(monkeypatch, tmp_path, capsys):
    import sys

    from jobs.run import main

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    out = tmp_path / "out"
    assert main(["--output", str(out), "--set", "similar.search=hnsw"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'item2vec-spark[ann]'" in err[0]
    assert not out.exists()
    ann.require("exact")  # the default needs nothing


def test_job_end_to_end_with_hnsw(spark, tmp_path):
    import pyarrow.dataset as ds

    from jobs.run import main

    out = tmp_path / "out"
    assert main(["--output", str(out), "--run-date", "2026-11-26",
                 "--set", "sample.users=300", "--set", "sample.items=200",
                 "--set", "evaluate.enabled=false", "--set", "train.max_auto_passes=2",
                 "--set", "similar.search=hnsw", "--set", "similar.k=10"]) == 0
    run = out / "dt=2026-11-26"
    manifest = json.loads((run / "manifest.json").read_text())
    sim = manifest["similarity"]
    assert sim["search"] == "hnsw" and sim["metric"] == "cosine"
    assert sim["hnsw"]["library"] == "faiss-cpu"
    assert sim["hnsw"]["ef_search"] == config.load().similar.hnsw_ef_search
    v = manifest["counts"]["vocabulary_size"]
    t = ds.dataset(str(run / "similar_items"), format="parquet").to_table()
    assert t.num_rows == manifest["counts"]["similar_rows"] == v * min(10, v - 1)
