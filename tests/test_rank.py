"""Hybrid ranking on hand-made sessions: exact lists for window, direction, normalisation, ties,
modes, items without a vector, the reference lists and the validation grid."""

import numpy as np
import pytest

from item2vec import cooccurrence as co
from item2vec import rank
from item2vec.rank import Lookups, Params, Weights
from item2vec.similar import Searcher

# Catalogue keys (by frequency in a real run; any order works here) and item vectors.
KEYS = {"a": 0, "b": 1, "c": 2, "d": 3, "x": 4}
VECTORS = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
SESSIONS = [["a", "b"], ["a", "b"], ["a", "b"], ["c", "a"], ["c", "a"], ["c", "a", "x"],
            ["d", "x", "c"]]


DEFAULT = Weights(1.0, 1.0, 0.05)


def run(spark, sessions, *, keys=KEYS, vectors=VECTORS, weights=DEFAULT,
        mode="hybrid", k=3, window=1, candidates=3, partners=10, pairs=None, grid=(),
        references=False, rules_from_forward=False, buckets=2, chunk_rows=co.CHUNK_ROWS,
        finish=False):
    """rank_items on ``sessions`` (lists of ids): returns {(model, id): [(other, score, cos,
    cooc), ...]} in rank order, or the grid metrics when ``pairs`` are given. ``finish``: the
    evidence tasks search the neighbours (rank.ChunkFinish), as the job does; else the
    ranking tasks do."""
    names = {v: n for n, v in keys.items()}
    keyed = spark.createDataFrame(
        [(i, [keys[x] for x in s], True) for i, s in enumerate(sessions)],
        f"session_id long, keys array<int>, {co.FIT} boolean")
    items = spark.createDataFrame([(i,) for i in range(len(vectors))], "item_id int")
    by_id = sorted(keys, key=str)
    lookups = Lookups(row_of_key=np.arange(len(vectors), dtype=np.int32),
                      key_of_row=np.arange(len(vectors), dtype=np.int32),
                      id_rank=np.array([by_id.index(names[i]) for i in range(len(keys))],
                                       dtype=np.int32),
                      frequency=np.array([sum(s.count(names[i]) for s in sessions)
                                          for i in range(len(keys))], dtype=np.int64))
    searcher = Searcher(spark, vectors, k=candidates, block_bytes=1 << 20, search="exact")
    params = Params(k=k, candidates=candidates, partners=partners, weights=weights, mode=mode,
                    references=references, ref_k=k, grid=tuple(grid), grid_ks=(k,),
                    cooc_alpha=0.5, cooc_lambda=0.0, rules_from_forward=rules_from_forward)
    bc = spark.sparkContext.broadcast(lookups)
    p = None if pairs is None else (np.array([keys[a] for a, _ in pairs]),
                                    np.array([keys[b] for _, b in pairs]))
    finisher = (rank.ChunkFinish(spark.sparkContext, searcher=searcher, lookups=bc,
                                 params=params, pairs=p) if finish or p is not None else None)
    ev = co.evidence(keyed, items, windows=co.Windows(near=window, forward=window, cooc=window,
                                                      rules=window),
                     span=len(keys), buckets=buckets, chunk_rows=chunk_rows,
                     fit=rank.shipped(params, grid=True) if p is not None else (),
                     finish=finisher)
    if p is not None:
        return rank.grid_metrics(ev, list(grid), ks=(k,), pairs=len(pairs))
    rows = rank.rank_items(ev, searcher=searcher, lookups=bc, params=params)
    out: dict = {}
    for r in rank.flat_lists(rows).orderBy("model", "item_id", "rank").collect():
        out.setdefault((rank.LIST_MODELS[r.model], names[r.item_id]), []).append(
            (names[r.other_id], r.score, r.cosine, r.cooccurrence))
    return out


def ids(rows):
    return [o for o, *_ in rows]


def test_features_are_normalised_per_item_and_scored(spark):
    got = run(spark, SESSIONS, weights=Weights(1.0, 1.0, 0.5))[("published", "a")]
    # window 1: a-b 3 times (a before b), a-c 3 times (c before a), a-x once (x after a);
    # b: sym 1 + fwd 1 + 0.5 x 0.8; c: sym 1 + fwd 0 + 0; x: 1/3 + 1/3 (no cosine)
    assert ids(got) == ["b", "c", "x"]
    (_, sb, cb, nb), (_, sc, cc, nc), (_, sx, cx, nx) = got
    assert sb == pytest.approx(2.4) and cb == pytest.approx(0.8) and nb == 3
    assert sc == pytest.approx(1.0) and cc == pytest.approx(0.0) and nc == 3
    assert sx == pytest.approx(2 / 3) and cx is None and nx == 1


def test_window_limits_the_evidence(spark):
    narrow = run(spark, SESSIONS, window=1, weights=Weights(1.0, 0.0, 0.0))
    wide = run(spark, SESSIONS, window=2, weights=Weights(1.0, 0.0, 0.0))
    # d and c are 2 positions apart: only the wide window sees them together (c is one of d's
    # embedding neighbours, so both lists show it)
    assert {o: n for o, _, _, n in wide[("published", "d")]}["c"] == 1
    assert {o: n for o, _, _, n in narrow[("published", "d")]}["c"] == 0


@pytest.mark.parametrize(("weights", "expected"), [
    (Weights(1.0, 0.0, 0.0), ["b", "c", "x"]),  # symmetric: b and c tie, b has the cosine
    (Weights(0.0, 1.0, 0.0), ["b", "x", "c"]),  # forward: only b and x follow a
    (Weights(0.0, 0.0, 1.0), ["b", "c", "x"]),  # cosine: x has none (0, last among ties)
    (Weights(1.0, 0.0, 2.0), ["b", "c", "x"]),
])
def test_weights_decide_the_order(spark, weights, expected):
    got = run(spark, SESSIONS, weights=weights, k=4)
    assert ids(got[("published", "a")]) == expected  # vocabulary: min(k, V - 1) = 3 rows


def test_items_without_vector_are_ranked_by_cooccurrence(spark):
    got = run(spark, SESSIONS, weights=Weights(1.0, 1.0, 0.5), k=5)
    x = got[("published", "x")]
    # x co-occurs once with a (before it), d (before it) and c (after it): c leads on forward,
    # a and d tie and go by id
    assert ids(x) == ["c", "a", "d"] and all(cos is None for _, _, cos, _ in x)
    sizes = {item: len(rows) for (model, item), rows in got.items() if model == "published"}
    assert sizes == {"a": 3, "b": 3, "c": 3, "d": 3, "x": 3}  # vocabulary: V - 1 = 3
    two = run(spark, SESSIONS, k=2)
    assert {i: len(r) for (m, i), r in two.items() if m == "published"} == {
        "a": 2, "b": 2, "c": 2, "d": 2, "x": 2}


def test_ties_go_to_higher_cosine_then_smaller_id(spark):
    keys = {"a": 0, "c": 1, "d": 2, "e": 3, "z": 4, "y": 5}  # y has the larger key, smaller id
    vectors = np.array([[1, 0], [0, 1], [-1, 0], [-0.6, -0.8]], dtype=np.float32)
    sessions = [["a", "d"], ["a", "c"], ["y", "a"], ["z", "a"]]
    got = run(spark, sessions, keys=keys, vectors=vectors, weights=Weights(1.0, 0.0, 0.0),
              k=3)
    # c, d, y, z all co-occur once with a; e is only an embedding neighbour (score 0):
    # c (cosine 0) before d (-1), then y before z by id although z has the smaller key
    assert ids(got[("published", "a")]) == ["c", "d", "y"]


def test_embedding_mode_ranks_vector_items_by_cosine_only(spark):
    got = run(spark, SESSIONS, mode="embedding", weights=Weights(1.0, 1.0, 0.05))
    a = got[("published", "a")]
    assert ids(a) == ["b", "c", "d"]  # cosines 0.8, 0, -1; x co-occurs but is no neighbour
    assert all(score == pytest.approx(cos) for _, score, cos, _ in a)
    assert [n for *_, n in a] == [3, 3, 0]
    assert ids(got[("published", "x")]) == ["c", "a", "d"]  # no vector: co-occurrence


def test_cooccurrence_mode_uses_the_cosine_for_ties_only(spark):
    got = run(spark, SESSIONS, mode="cooccurrence", weights=Weights(0.0, 1.0, 5.0))
    assert ids(got[("published", "a")]) == ["b", "x", "c"]  # c ahead of d by cosine


def test_reference_lists(spark):
    sessions = [["a", "b", "c"], ["a", "b"], ["c", "d"]]
    got = run(spark, sessions, references=True, k=5, window=1)
    # item-kNN, window 1: a: co(a,b) = 2; c: co(c,b) = 1 / sqrt(2 x 2), co(c,d) = 1 / sqrt(2 x 1)
    assert ids(got[("cooc_knn", "a")]) == ["b"]
    assert ids(got[("cooc_knn", "c")]) == ["d", "b"]
    assert got[("cooc_knn", "c")][0][1] == pytest.approx(1 / np.sqrt(2))
    # sequential rules, window 1: b follows a twice; nothing follows d
    assert [(o, s) for o, s, *_ in got[("sequential_rules", "a")]] == [("b", 2.0)]
    assert ("sequential_rules", "d") not in got
    # embedding alone: every vector item's neighbours by cosine
    assert ids(got[("embedding", "a")]) == ["b", "c", "d"]


def test_sequential_rules_weigh_one_over_distance(spark):
    sessions = [["a", "b", "c"], ["a", "c"], ["c", "a"]]
    got = run(spark, sessions, references=True, k=3, window=2)
    # a: c after a at distance 2 (0.5) and 1 (1.0) = 1.5; b after a at 1 = 1.0
    assert [(o, s) for o, s, *_ in got[("sequential_rules", "a")]] == [("c", 1.5), ("b", 1.0)]
    assert [(o, s) for o, s, *_ in got[("sequential_rules", "c")]] == [("a", 1.0)]
    # the rules window being the forward window, the rules list is read off the forward
    # partners (rules_from_forward: its sums are not even shipped); with fewer forward
    # partners than the list holds, or its own sums, it is ranked on its own: the same lists
    # (ties to the smaller id: c's "a" and "b" both score 1 after c here)
    ties = [["a", "b", "c"], ["a", "c"], ["c", "a"], ["c", "b"], ["d", "x"], ["x", "d"]]
    wide = run(spark, ties, references=True, k=3, window=2, partners=10, rules_from_forward=True)
    narrow = run(spark, ties, references=True, k=3, window=2, partners=1)
    rules = {key: rows for key, rows in wide.items() if key[0] == "sequential_rules"}
    assert rules == {key: rows for key, rows in narrow.items() if key[0] == "sequential_rules"}
    assert ids(rules[("sequential_rules", "c")]) == ["a", "b"]
    assert ids(rules[("sequential_rules", "a")]) == ["c", "b"]


def test_grid_metrics_rank_the_true_next_item(spark):
    grid = [Weights(0.0, 1.0, 0.0), Weights(1.0, 0.0, 0.0)]
    pairs = [("a", "x"), ("a", "c"), ("a", "d")]
    got = run(spark, SESSIONS, pairs=pairs, grid=grid, k=2, candidates=2)
    # a's candidates: b, c (embedding), b, c, x (partners). forward: b, x, c -> x at 2;
    # symmetric: b, c, x -> c at 2; d is no candidate: a miss for every mix
    assert got[0]["pairs"] == 3
    assert got[0]["hr@2"] == pytest.approx(1 / 3) and got[0]["mrr@2"] == pytest.approx(0.5 / 3)
    assert got[1]["hr@2"] == pytest.approx(1 / 3) and got[1]["mrr@2"] == pytest.approx(0.5 / 3)
    wide = run(spark, SESSIONS, pairs=pairs, grid=grid, k=3, candidates=2)
    assert wide[0]["hr@3"] == pytest.approx(2 / 3)
    assert wide[0]["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 3)


def test_rank_items_keeps_every_vocabulary_item(spark):
    got = run(spark, [["a", "b"]], k=2)  # c and d never occur: embedding neighbours only
    assert {i for (m, i) in got if m == "published"} == {"a", "b", "c", "d"}
    assert all(n == 0 for *_, n in got[("published", "c")])


def test_forward_decay_weighs_distance(spark):
    # after a: b, x and d at distance 1 once each; c at distance 2 twice
    sessions = [["a", "b"], ["a", "x", "c"], ["a", "d", "c"]]
    one = run(spark, sessions, window=2, weights=Weights(0.0, 1.0, 0.0, decay=1), k=3)
    two = run(spark, sessions, window=2, weights=Weights(0.0, 1.0, 0.0, decay=2), k=3)
    # 1/d: c scores 2 x 1/2 = 1, a four-way tie broken by cosine (b .8, c 0, d -1, x none);
    # 1/d^2: c scores 2 x 1/4 = 0.5 and drops out of the top 3
    assert [(o, s) for o, s, *_ in one[("published", "a")]] == [("b", 1.0), ("c", 1.0),
                                                                ("d", 1.0)]
    assert [(o, s) for o, s, *_ in two[("published", "a")]] == [("b", 1.0), ("d", 1.0),
                                                                ("x", 1.0)]


def test_weight_grid_tries_the_default_first():
    default = Weights(0.3, 0.7, 0.04)
    grid = rank.weight_grid(default)
    assert grid[0] == default and len(set(grid)) == len(grid) == 57
    assert {w.decay for w in grid} == {1, 2}
    assert all(w.cooccurrence + w.forward == pytest.approx(1.0) for w in grid[1:])
    only_counts = rank.weight_grid(default, mode="cooccurrence")
    assert only_counts[0] == Weights(0.3, 0.7, 0.0) and {w.cosine for w in only_counts} == {0}


def test_packed_ranking_order_is_lexsorts():
    """rank._ranked packs (item, value, id) into one int64 key: the order must be lexsort's,
    ties on value broken by id, rows without evidence dropped, and the same when the key
    would not fit (lexsort itself)."""
    rng = np.random.default_rng(3)
    seg = np.sort(rng.integers(0, 40, 5000))
    ids = np.concatenate([rng.permutation(5000)[: (seg == s).sum()] for s in range(40)])
    sums = rng.random(5000).astype(np.float32).astype(float)  # float32: keyed by their bits
    for value in (rng.integers(0, 4, 5000).astype(float), np.round(rng.random(5000), 2), sums):
        ok = np.flatnonzero(value > 0)
        want = ok[np.lexsort((ids[ok], -value[ok], seg[ok]))]
        assert np.array_equal(rank._ranked(seg, value, ids, n_seg=40, n_ids=5000), want)
        assert np.array_equal(rank._ranked(seg, value, ids, n_seg=40, n_ids=1 << 62), want)


def test_score_order_is_lexsorts():
    """rank._score_order sorts (item, score) packed and re-sorts only tied rows: the order
    must be lexsort's with negative scores, -0.0 equal to 0.0, and scores that all tie."""
    rng = np.random.default_rng(4)
    seg = np.sort(rng.integers(0, 30, 3000))
    ids = np.concatenate([rng.permutation(3000)[: (seg == s).sum()] for s in range(30)])
    tie = np.where(rng.random(3000) < 0.3, -2.0, rng.integers(-2, 3, 3000) / 2)
    for score in (rng.standard_normal(3000), rng.integers(-3, 4, 3000) / 4,
                  np.where(rng.random(3000) < 0.5, -0.0, 0.0)):
        score = score.astype(np.float32)
        want = np.lexsort((ids, -tie, -score, seg))
        assert np.array_equal(rank._score_order(seg, score, tie, ids, n_seg=30), want)


def test_top_rows_per_item_without_sorting_every_row_are_the_sorted_ones():
    """rank._top drops rows below a lower bound of each item's limit-th value before sorting:
    the result must be exactly the first ``limit`` rows of rank._ranked's order, for items
    small and large (pruned), heavy ties on the boundary and rows without evidence."""
    rng = np.random.default_rng(5)
    sizes = np.r_[rng.integers(0, 30, 30), rng.integers(150, 3000, 10), 0, 400]
    seg = np.repeat(np.arange(len(sizes)), sizes)
    n = len(seg)
    ids = np.concatenate([rng.permutation(4000)[:size] for size in sizes])
    for value in (rng.integers(0, 4, n).astype(float),  # mostly tied counts, zeros
                  rng.pareto(1.0, n) * (rng.random(n) < 0.7),
                  np.where(np.arange(n) % 97 == 0, 5.0, 1.0)):
        for limit in (1, 5, 20, 50):
            want = rank._first_per_segment(
                seg, rank._ranked(seg, value, ids, n_seg=len(sizes), n_ids=4000), limit,
                len(sizes))
            got = rank._top(seg, value, ids, limit, n_seg=len(sizes), n_ids=4000)
            assert np.array_equal(got, want), limit


def test_lists_do_not_depend_on_how_the_evidence_is_bucketed_or_chunked(spark):
    """Each evidence chunk is ranked on its own: the lists must be the same whether the items
    share one bucket and chunk or each sits in a chunk of its own."""
    want = run(spark, SESSIONS, weights=Weights(1.0, 1.0, 0.5), references=True, buckets=1)
    got = run(spark, SESSIONS, weights=Weights(1.0, 1.0, 0.5), references=True, buckets=3,
              chunk_rows=1)
    assert got == want and len(want) > 4


def test_rows_that_matter_keep_the_strongest_partners_normalisers_and_neighbours():
    # one item, partners 1..5: near 5,4,3,2,1; fwd1 1,2,0,0,0; fwd2 0,0,0,0,0.5
    batch = rank.Batch(keys=np.array([0]), seg=np.zeros(5, np.int64),
                       other=np.arange(1, 6), near=np.array([5.0, 4, 3, 2, 1]),
                       fwd1=np.array([1.0, 2, 0, 0, 0]), fwd2=np.array([0, 0, 0, 0, 0.5]),
                       near_c=np.zeros(5), rules=np.zeros(5),
                       nbr_seg=np.array([0, 0]), nbr_other=np.array([4, 9]),
                       nbr_cos=np.array([0.9, 0.8]))
    lookups = Lookups(row_of_key=np.arange(10, dtype=np.int32),
                      key_of_row=np.arange(10, dtype=np.int32),
                      id_rank=np.arange(10, dtype=np.int32), frequency=np.ones(10, np.int64))
    params = Params(k=2, candidates=2, partners=1, weights=DEFAULT, mode="hybrid",
                    references=False)
    # strongest by near (1), by fwd1 (2), by fwd2 (5), the neighbour 4 (9 never co-occurred)
    assert rank.rows_that_matter(batch, lookups, params).tolist() == [0, 1, 3, 4]


def test_grid_counts_pairs_whose_prev_item_has_no_evidence_as_misses(spark):
    grid = [Weights(1.0, 0.0, 0.0)]
    # key 5 ("z") never occurs in a session: its pair is scored as a miss
    keys = KEYS | {"z": 5}
    hit = run(spark, SESSIONS, pairs=[("a", "b")], grid=grid, k=2, keys=KEYS)
    both = run(spark, SESSIONS, pairs=[("a", "b"), ("z", "b")], grid=grid, k=2, keys=keys)
    assert hit[0]["hr@2"] == 1.0 and both[0]["hr@2"] == 0.5 and both[0]["pairs"] == 2


def test_neighbours_searched_in_the_evidence_tasks_give_the_same_lists(spark):
    """The job searches each item's embedding neighbours while its evidence is built
    (rank.ChunkFinish) and the ranking reads them from the chunk: the lists, references
    included, must be those of a ranking that searches them itself."""
    for partners in (10, 1):  # 1: the chunks keep only the partner rows that can matter
        kwargs = {"weights": Weights(1.0, 1.0, 0.5), "references": True, "k": 3,
                  "candidates": 2, "partners": partners}
        searched = run(spark, SESSIONS, **kwargs)
        carried = run(spark, SESSIONS, finish=True, **kwargs)
        assert carried == searched and ids(carried[("embedding", "a")]) == ["b", "c"]


def test_chunk_finish_keeps_neighbours_and_drops_the_fit_sums(spark):
    keyed = spark.createDataFrame([(0, [0, 1], True), (1, [0, 2], False)],
                                  f"session_id long, keys array<int>, {co.FIT} boolean")
    items = spark.createDataFrame([(i,) for i in range(4)], "item_id int")
    searcher = Searcher(spark, VECTORS, k=2, block_bytes=1 << 20, search="exact")
    lookups = spark.sparkContext.broadcast(Lookups(
        row_of_key=np.arange(4, dtype=np.int32), key_of_row=np.arange(4, dtype=np.int32),
        id_rank=np.arange(4, dtype=np.int32), frequency=np.ones(4, dtype=np.int64)))
    params = Params(k=2, candidates=2, partners=5, weights=DEFAULT, mode="hybrid",
                    references=False, grid=(DEFAULT,), grid_ks=(2,))
    finish = rank.ChunkFinish(spark.sparkContext, searcher=searcher, lookups=lookups,
                              params=params, pairs=(np.array([0]), np.array([1])),
                              only=np.array([1, 3]))
    ev = co.evidence(keyed, items, windows=co.Windows(1, 1, 1, 1), span=4, buckets=1,
                     fit=("near", "fwd1"), finish=finish)
    chunk = co.read_chunk(ev.first().data)
    assert not [n for n in chunk.schema.names if n.endswith(co.FIT)]
    # a's partners b and c, b's a, c's a (with partners=5 every row can matter): only the
    # query items' rows and neighbours are kept (b's a; d has no partner)
    assert chunk.column("other_id").to_pylist() == [[], [0], [], []]
    nbrs = dict(zip(chunk.column("item_id").to_pylist(), chunk.column(rank.NBR).to_pylist(),
                    strict=True))
    assert nbrs == {0: [], 1: [0, 2], 2: [], 3: [2, 1]}
    # the pair a -> b, scored from a's search and sums before they were dropped: b is a's only
    # fit-part partner and its best neighbour
    assert rank.grid_metrics(ev, [DEFAULT], ks=(2,), pairs=1)[0]["hr@2"] == 1.0
