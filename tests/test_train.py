import numpy as np
import pytest

from item2vec.errors import BadInput
from item2vec.train import check_capacity, plan_passes, to_matrix, train_vectors

AUTO = {"auto_tokens": 3_000_000, "max_auto_passes": 45, "max_auto_copies": 3}


@pytest.mark.parametrize(("tokens", "copies", "iterations", "expected"), [
    (60_000, 0, 0, (3, 15)),       # small log: capped at 45 passes
    (800_000, 0, 0, (3, 2)),       # 4 passes needed: 3 copies, 2 iterations
    (8_000_000, 0, 0, (1, 1)),     # large log: one pass
    (100_000, 1, 0, (1, 30)),      # copies fixed: iterations take the passes
    (100_000, 0, 2, (3, 2)),       # iterations fixed: copies up to the cap
    (100_000, 2, 7, (2, 7)),       # both fixed: as given
])
def test_plan_passes(tokens, copies, iterations, expected):
    assert plan_passes(tokens, copies=copies, iterations=iterations, **AUTO) == expected


def test_capacity_guard_names_the_fix():
    check_capacity(1_000_000, 2000)
    with pytest.raises(BadInput, match=r"2\^31, MLlib's limit; raise vocabulary.min_count"):
        check_capacity(10_000_000, 256)
    with pytest.raises(BadInput, match="driver memory"):
        check_capacity(1_000_000, 64, driver_bytes=100 << 20)
    with pytest.raises(BadInput, match="needs about 3,906 MiB"):  # a 4g driver did not fit it
        check_capacity(1_000_000, 64, driver_bytes=3_641 << 20)  # maxMemory() under -Xmx4g
    check_capacity(100_000, 64, driver_bytes=3 << 30)  # the 10M-event benchmark's model


def test_train_gives_one_vector_per_token_and_a_dense_matrix(spark):
    sentences = [["0", "1", "2"], ["1", "2", "0"], ["2", "3"]] * 20
    corpus = spark.createDataFrame([(s,) for s in sentences], "sentence array<string>")
    vectors = train_vectors(corpus, vocab_size=5, vector_size=4, window=2, iterations=1,
                            step_size=0.025, num_partitions=1, seed=1, max_sentence_length=100)
    # Rows are made by tasks from a broadcast, never shipped from the driver inside them.
    assert "LocalTableScan" not in vectors._jdf.queryExecution().executedPlan().toString()
    matrix, present = to_matrix(vectors, 5)
    assert matrix.shape == (5, 4) and matrix.dtype == np.float32
    assert present.tolist() == [True, True, True, True, False]
    assert not matrix[4].any() and matrix[:4].any()


@pytest.mark.parametrize(("tokens", "setting", "cores", "expected"), [
    (20_000, 0, 2, 1),         # small corpus: averaging would cost quality
    (8_000_000, 0, 2, 2),      # large corpus: all cores
    (8_000_000, 0, 64, 4),     # one partition per 2M tokens
    (20_000, 3, 2, 3),         # explicit setting wins
])
def test_plan_partitions(tokens, setting, cores, expected):
    from item2vec.train import plan_partitions

    assert plan_partitions(tokens, num_partitions=setting, tokens_per_partition=2_000_000,
                           cores=cores) == expected
