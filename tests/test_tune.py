import pytest

from item2vec.errors import BadInput
from jobs.tune import format_table, parse_grid, variants


def test_grid_parsing_keeps_lists_and_strings():
    grid = parse_grid(["train.window=3,5", 'input.event_types=["view","cart"],[]',
                       "corpus.mode=sequence,basket"])
    assert grid == {"train.window": ["3", "5"], "input.event_types": ['["view","cart"]', "[]"],
                    "corpus.mode": ["sequence", "basket"]}
    with pytest.raises(BadInput, match=r"expected section\.key=v1,v2"):
        parse_grid(["window=3"])


def test_variants_product_random_subset_and_empty():
    grid = {"a.x": ["1", "2"], "b.y": ["3", "4", "5"]}
    full = variants(grid, n_random=0, seed=0)
    assert len(full) == 6 and ("a.x=1", "b.y=3") in full
    sub = variants(grid, n_random=2, seed=1)
    assert len(sub) == 2 and set(sub) <= set(full)
    assert sub == variants(grid, n_random=2, seed=1)
    assert variants({}, n_random=0, seed=0) == []


def test_table_is_printed_best_first_as_given():
    rows = [{"variant": "defaults", "hr@10": 0.3, "mrr@10": 0.1, "ndcg@10": 0.2, "hr@20": 0.4,
             "coverage@10": 0.9, "seconds": 1.0}]
    text = format_table(rows)
    assert "defaults" in text and "0.3000" in text


def test_tune_main_writes_a_table_best_first(spark, tmp_path, capsys):
    import pyarrow.parquet as pq

    from jobs.tune import main

    small = ["--set", "sample.users=300", "--set", "sample.items=120", "--set",
             "train.max_auto_passes=3", "--set", "train.vector_size=16"]
    code = main(["--output", str(tmp_path), "--run-date", "2026-11-26", *small,
                 "--grid", "train.window=2"])
    assert code == 0
    rows = pq.read_table(tmp_path / "tune-2026-11-26.parquet").to_pylist()
    assert {r["variant"] for r in rows} == {"defaults", "train.window=2", "mllib-defaults",
                                            "popularity", "cooc_knn"}
    hrs = [r["hr@10"] for r in rows]
    assert hrs == sorted(hrs, reverse=True)
    assert all(0 <= h <= 1 for h in hrs)
    assert "cooc_knn" in capsys.readouterr().out
