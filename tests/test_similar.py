import numpy as np
import pytest

from item2vec.similar import block_rows, normalize, top_k_block, top_k_similar, with_item_ids


def _brute(m, k):
    n = normalize(m)
    s = n @ n.T
    np.fill_diagonal(s, -np.inf)
    out = []
    for i in range(len(m)):
        order = sorted(range(len(m)), key=lambda j: (-s[i, j], j))
        order = [j for j in order if j != i][:k]
        out.append((order, s[i, order]))
    return out


def _collect(df):
    rows = df.orderBy("item_index", "rank").collect()
    res = {}
    for r in rows:
        res.setdefault(r.item_index, []).append((r.rank, r.similar_index, r.score))
    return res


@pytest.mark.parametrize(("v", "k", "block_bytes"), [(57, 5, 1 << 20), (9, 20, 1 << 20)])
def test_matches_brute_force(spark, v, k, block_bytes):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(v, 8)).astype(np.float32)
    got = _collect(top_k_similar(spark, m, k=k, block_bytes=block_bytes, partitions=2,
                                   search="exact"))
    want = _brute(m, min(k, v - 1))
    assert sorted(got) == list(range(v))
    for i, (idx, scores) in enumerate(want):
        rows = got[i]
        assert [r[0] for r in rows] == list(range(1, len(idx) + 1))
        assert [r[1] for r in rows] == idx
        assert np.allclose([r[2] for r in rows], scores, atol=1e-5)
        assert i not in [r[1] for r in rows]


def test_many_blocks_give_same_answer_as_one(spark):
    rng = np.random.default_rng(1)
    m = rng.normal(size=(300, 4)).astype(np.float32)
    assert block_rows(300, 4 * 300 * 16) == 16
    small = _collect(top_k_similar(spark, m, k=3, block_bytes=4 * 300 * 16, partitions=3,
                                     search="exact"))
    big = _collect(top_k_similar(spark, m, k=3, block_bytes=1 << 30, partitions=1,
                                   search="exact"))
    assert small == big


def test_ties_broken_by_smaller_index():
    # Items 1..4 are identical: every one of them ties with the others.
    m = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [0, 1], [1, 1]], dtype=np.float32)
    n = normalize(m)
    q = np.array([1, 4, 0], dtype=np.int32)
    idx, vals = top_k_block(q, n[q], n, 2)
    assert idx.tolist() == [[2, 3], [1, 2], [5, 1]]
    assert np.allclose(vals[0], [1, 1])


def test_zero_vectors_do_not_break_normalisation():
    n = normalize(np.array([[0, 0], [3, 4]], dtype=np.float32))
    assert np.allclose(n, [[0, 0], [0.6, 0.8]])


def test_queries_subset_and_item_ids(spark):
    m = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    pairs = top_k_similar(spark, m, k=1, block_bytes=1 << 20, partitions=0, search="exact",
                          queries=np.array([0, 2]))
    vocab = spark.createDataFrame([("a", 0, 9), ("b", 1, 8), ("c", 2, 7), ("d", 3, 6)],
                                  "item_id string, item_index int, frequency long")
    rows = sorted(tuple(r)[:3] for r in with_item_ids(pairs, vocab).collect())
    assert rows == [("a", 1, "b"), ("c", 1, "d")]


def test_grouped_selection_matches_full_sort_on_a_large_vocabulary():
    """V large enough for the grouped-max path; duplicates force ties at the k-th score."""
    rng = np.random.default_rng(2)
    m = rng.normal(size=(6000, 8)).astype(np.float32)
    m[100:140] = m[7]  # 40 copies of item 7: ties across many groups
    n = normalize(m)
    q = np.array([7, 100, 5, 5999], dtype=np.int32)
    idx, vals = top_k_block(q, n[q], n, 20)
    buffer = np.full((8, len(n)), np.nan, dtype=np.float32)  # reused, larger than the block
    again = top_k_block(q, n[q], n, 20, out=buffer)
    assert np.array_equal(again[0], idx) and np.array_equal(again[1], vals)
    s = n[q] @ n.T
    s[np.arange(len(q)), q] = -np.inf
    for r in range(len(q)):
        order = np.lexsort((np.arange(s.shape[1]), -s[r]))[:20]
        assert idx[r].tolist() == order.tolist()
        assert np.allclose(vals[r], s[r, order], atol=1e-6)
