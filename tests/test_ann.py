"""Approximate (IVF, HNSW) top-k: same contract as the exact path, high recall, exact fallback."""

import json

import numpy as np
import pyarrow.compute as pc
import pytest

from item2vec import ann, config
from item2vec.errors import BadInput
from item2vec.similar import normalize, top_k_block, top_k_similar

faiss = pytest.importorskip("faiss")

HNSW = ann.HnswParams(m=16, ef_construction=64, ef_search=64)
IVF = ann.IvfParams(nlist=0, nprobe=8)
METHODS = [("ivf", IVF), ("hnsw", HNSW)]


def _clustered(n: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    return (centres[rng.integers(0, clusters, n)]
            + rng.standard_normal((n, dim)).astype(np.float32))


def _arrays(df):
    t = df.toArrow().sort_by([("item_index", "ascending"), ("rank", "ascending")])
    return tuple(t.column(c).to_numpy() for c in ("item_index", "rank", "similar_index", "score"))


@pytest.mark.parametrize(("search", "params"), METHODS)
def test_output_keeps_the_contract_with_exact_scores(spark, search, params):
    v, k = 400, 7
    m = _clustered(v, 16, 8)
    item, rank, other, score = _arrays(top_k_similar(
        spark, m, k=k, block_bytes=1 << 20, partitions=2, search=search, params=params))
    assert len(item) == v * k
    assert np.array_equal(item, np.repeat(np.arange(v), k))
    assert np.array_equal(rank, np.tile(np.arange(1, k + 1), v))
    assert not np.any(item == other)
    per_item = score.reshape(v, k)
    assert np.all(np.diff(per_item, axis=1) <= 0)
    assert all(len(set(row)) == k for row in other.reshape(v, k))
    n = normalize(m)
    assert np.allclose(score, np.einsum("nd,nd->n", n[item], n[other]), atol=1e-5)


@pytest.mark.parametrize(("search", "params"), METHODS)
def test_recall_at_10_against_exact(spark, search, params):
    m = _clustered(3000, 32, 30, seed=1)
    got = _arrays(top_k_similar(spark, m, k=10, block_bytes=1 << 22, partitions=0,
                                search=search, params=params))[2].reshape(-1, 10)
    exact = _arrays(top_k_similar(spark, m, k=10, block_bytes=1 << 22, partitions=0,
                                  search="exact"))[2].reshape(-1, 10)
    hits = sum(len(set(a) & set(b)) for a, b in zip(got, exact, strict=True))
    recall = hits / exact.size
    print(f"{search} recall@10 {recall:.4f}")
    assert recall >= 0.95


@pytest.mark.parametrize(("search", "params"), METHODS)
def test_deterministic_and_handles_tiny_vocabularies(spark, search, params):
    m = _clustered(600, 8, 6, seed=2)
    kw = {"k": 5, "block_bytes": 1 << 20, "search": search, "params": params}
    first = _arrays(top_k_similar(spark, m, partitions=1, **kw))
    again = _arrays(top_k_similar(spark, m, partitions=2, **kw))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    two = _arrays(top_k_similar(spark, m[:2], partitions=0, **kw))  # V = 2: one neighbour each
    assert two[2].tolist() == [1, 0] and two[1].tolist() == [1, 1]
    assert ann.build_index(normalize(m), params).tobytes() == \
        ann.build_index(normalize(m), params).tobytes()


def test_ivf_build_is_the_same_with_one_or_two_threads():
    n = normalize(_clustered(20_000, 16, 200, seed=5))
    params = ann.IvfParams(nlist=0, nprobe=4)
    threads = faiss.omp_get_max_threads()
    blobs = []
    try:
        for t in (1, 2, 2):
            faiss.omp_set_num_threads(t)
            blobs.append(ann.build_index(n, params).tobytes())
    finally:
        faiss.omp_set_num_threads(threads)
    assert blobs[0] == blobs[1] == blobs[2]


def test_ivf_cells_auto_and_bounded():
    assert ann.IvfParams(0, 8).lists(100_000) == 1265
    assert ann.IvfParams(0, 8).lists(1_000_000) == 4000
    assert ann.IvfParams(0, 8).lists(60) == 1  # at least 39 items per cell
    assert ann.IvfParams(500, 8).lists(3900) == 100
    assert ann.IvfParams(50, 8).lists(100_000) == 50
    sample = ann.training_sample(1000, 10)  # 64 rows per cell, seeded, sorted, distinct
    assert len(sample) == 640 and np.all(np.diff(sample) > 0)
    assert np.array_equal(sample, ann.training_sample(1000, 10))
    assert np.array_equal(ann.training_sample(500, 10), np.arange(500))


def test_ivf_loaded_vectors_are_the_items_in_order():
    n = normalize(_clustered(2000, 16, 20, seed=6))
    loaded = ann.LoadedIndex(ann.build_index(n, IVF), IVF)
    assert np.array_equal(loaded.vectors, n)


def test_rows_the_index_cannot_fill_fall_back_to_exact():
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

    class Stub:  # an index that returns nothing: every row is answered exactly
        def search(self, queries, width):
            return np.full((len(queries), width), -1, dtype=np.int64)

    from item2vec.similar import _approximate_block

    idx, vals = _approximate_block(Stub(), q, n, 4, exact_rows=2)
    assert np.array_equal(idx, want_idx) and np.allclose(vals, want_val)


@pytest.mark.parametrize(("search", "params"), [
    ("ivf", ann.IvfParams(nlist=7, nprobe=1)),  # 300 items in 7 cells, k=40: many rows short
    ("hnsw", ann.HnswParams(m=4, ef_construction=8, ef_search=1)),
])
def test_a_real_index_with_a_tiny_search_still_fills_every_row(spark, search, params):
    """faiss may pad with -1 when it finds fewer than k + 1; the fallback keeps min(k, V-1)."""
    m = _clustered(300, 8, 2, seed=4)
    item, rank, other, score = _arrays(top_k_similar(
        spark, m, k=40, block_bytes=1 << 20, partitions=0, search=search, params=params))
    assert len(item) == 300 * 40 and not np.any(item == other)
    assert np.array_equal(rank, np.tile(np.arange(1, 41), 300))
    assert np.all(np.diff(score.reshape(300, 40), axis=1) <= 0)
    n = normalize(m)
    assert np.allclose(score, np.einsum("nd,nd->n", n[item], n[other]), atol=1e-5)


def test_wrong_params_for_the_search_are_a_programming_error(spark):
    m = _clustered(50, 4, 2)
    with pytest.raises(ValueError, match="needs params=IvfParams"):
        top_k_similar(spark, m, k=3, block_bytes=1 << 20, partitions=0, search="ivf",
                      params=HNSW)


@pytest.mark.parametrize(("override", "message"), [
    ("similar.search=annoy", "similar.search: expected one of exact, ivf, hnsw"),
    ("similar.ivf_nlist=-1", "similar.ivf_nlist: expected a value >= 0"),
    ("similar.ivf_nprobe=0", "similar.ivf_nprobe: expected a value >= 1"),
    ("similar.ivf_nprobe=1.5", "similar.ivf_nprobe: expected int"),
    ("similar.hnsw_m=2", "similar.hnsw_m: expected a value >= 4"),
    ("similar.hnsw_ef_construction=0", "similar.hnsw_ef_construction: expected a value >= 8"),
    ("similar.hnsw_ef_search=1.5", "similar.hnsw_ef_search: expected int"),
])
def test_bad_config_is_rejected_with_the_key_named(override, message):
    with pytest.raises(BadInput) as err:
        config.load(overrides=[override])
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("search", ann.METHODS)
def test_missing_library_fails_fast_with_the_install_hint(monkeypatch, tmp_path, capsys, search):
    import sys

    from jobs.run import main

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    out = tmp_path / "out"
    assert main(["--output", str(out), "--set", f"similar.search={search}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'item2vec-spark[ann]'" in err[0]
    assert f"similar.search={search}" in err[0]
    assert not out.exists()
    ann.require("exact")  # the default needs nothing


@pytest.mark.parametrize("search", ann.METHODS)
def test_job_end_to_end(spark, tmp_path, search):
    import pyarrow.dataset as ds

    from jobs.run import main

    out = tmp_path / "out"
    assert main(["--output", str(out), "--run-date", "2026-11-26",
                 "--set", "sample.users=300", "--set", "sample.items=200",
                 "--set", "evaluate.enabled=false", "--set", "train.max_auto_passes=2",
                 "--set", f"similar.search={search}", "--set", "similar.k=10"]) == 0
    run = out / (out / "LATEST").read_text().strip()
    manifest = json.loads((run / "manifest.json").read_text())
    sim = manifest["similarity"]
    assert sim["search"] == search and sim["metric"] == "cosine"
    assert sim[search]["library"] == "faiss-cpu"
    other = {"ivf": "hnsw", "hnsw": "ivf"}[search]
    assert other not in sim
    v = manifest["counts"]["vocabulary_size"]
    cfg = config.load().similar
    if search == "ivf":
        assert sim["ivf"]["nprobe"] == cfg.ivf_nprobe and sim["ivf"]["nlist"] == cfg.ivf_nlist
        assert sim["ivf"]["nlist_used"] == ann.IvfParams.from_config(cfg).lists(v)
    else:
        assert sim["hnsw"]["ef_search"] == cfg.hnsw_ef_search
    t = ds.dataset(str(run / "similar_items"), format="parquet").to_table()
    assert t.num_rows == manifest["counts"]["similar_rows"]
    vocab = ds.dataset(str(run / "vocabulary"), format="parquet").to_table().column("item_id")
    in_vocab = t.filter(pc.is_in(t.column("item_id"), value_set=vocab))
    assert in_vocab.num_rows == v * min(10, v - 1)  # items below min_count: up to 10 more each
