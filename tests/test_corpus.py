from collections import Counter

from pyspark.sql import functions as F

from item2vec.corpus import build_corpus, keep_probability


def _inputs(spark, lists, vocab):
    sessions = spark.createDataFrame([(i, items) for i, items in enumerate(lists)],
                                     "session_id long, items array<string>")
    v = spark.createDataFrame(vocab, "item_id string, item_index int, frequency long")
    return sessions, v


def _sentences(df):
    return [r["sentence"] for r in df.collect()]


def test_without_subsampling_tokens_are_vocab_indexes_in_order(spark):
    s, v = _inputs(spark, [["a", "x", "b", "c"], ["c", "a"]],
                   [("a", 0, 2), ("b", 1, 1), ("c", 2, 2)])
    out = _sentences(build_corpus(s, v, subsample=0, copies=1, mode="sequence",
                                  min_sentence_length=2, seed=1))
    assert sorted(out) == sorted([["0", "1", "2"], ["2", "0"]])


def test_copies_multiply_and_basket_mode_shuffles_but_keeps_items(spark):
    s, v = _inputs(spark, [[f"i{n}" for n in range(12)]],
                   [(f"i{n}", n, 1) for n in range(12)])
    seq = _sentences(build_corpus(s, v, subsample=0, copies=3, mode="sequence",
                                  min_sentence_length=2, seed=1))
    assert seq == [[str(n) for n in range(12)]] * 3
    basket = _sentences(build_corpus(s, v, subsample=0, copies=3, mode="basket",
                                     min_sentence_length=2, seed=1))
    assert len(basket) == 3
    assert all(sorted(b, key=int) == seq[0] for b in basket)
    assert any(b != seq[0] for b in basket)
    assert len({tuple(b) for b in basket}) > 1


def test_subsampling_drops_frequent_items_more_and_is_deterministic(spark):
    # "hot" is 90 % of the corpus, each "r*" item appears once.
    lists = [["hot", f"r{n}", "hot", "hot"] for n in range(300)]
    vocab = [("hot", 0, 900)] + [(f"r{n}", n + 1, 1) for n in range(300)]
    s, v = _inputs(spark, lists, vocab)
    kw = {"subsample": 1e-3, "copies": 2, "mode": "sequence", "min_sentence_length": 1,
          "seed": 3}
    first = _sentences(build_corpus(s, v, **kw))
    counts = Counter(t for sent in first for t in sent)
    total = 1200
    # keep prob of hot: sqrt(t/f) + t/f with f = 0.75 -> ~0.038; rare items: 1
    assert counts["hot"] < 0.1 * 900 * 2
    assert sum(c for t, c in counts.items() if t != "0") == 300 * 2
    assert first == _sentences(build_corpus(s, v, **kw))
    p = spark.range(1).select(keep_probability(F.lit(900), total, 1e-3).alias("p")).first().p
    assert abs(p - ((1e-3 / 0.75) ** 0.5 + 1e-3 / 0.75)) < 1e-9


def test_short_sentences_dropped(spark):
    s, v = _inputs(spark, [["a", "b"], ["a", "z"]], [("a", 0, 2), ("b", 1, 1)])
    out = _sentences(build_corpus(s, v, subsample=0, copies=1, mode="sequence",
                                  min_sentence_length=2, seed=1))
    assert out == [["0", "1"]]


def test_keyed_sessions_carry_keys_keep_probabilities_and_extra_columns(spark):
    from item2vec.corpus import keyed_sessions, with_keep

    sessions = spark.createDataFrame([(1, ["b", "a", "b", "c"], True), (2, ["c", "a"], False)],
                                     "session_id long, items array<string>, _fit boolean")
    catalogue = spark.createDataFrame([("a", 0, 2), ("b", 1, 2), ("c", 2, 2)],
                                      "item_id string, item_index int, frequency long")
    # a vocabulary of two items: c (index 2) is outside it and never reaches the corpus
    kept = with_keep(catalogue, vocab_size=2, subsample=0)
    keyed = keyed_sessions(sessions, kept, keep=("_fit",))
    assert sorted(tuple(r) for r in keyed.collect()) == [
        (1, True, [1, 0, 1, 2], [1.0, 1.0, 1.0, 0.0]), (2, False, [2, 0], [0.0, 1.0])]
