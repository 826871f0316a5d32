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


def test_table_prints_validation_best_first_then_test():
    rows = [{"variant": "a", "split": "validation", "ndcg@10": 0.1},
            {"variant": "b", "split": "validation", "ndcg@10": 0.3},
            {"variant": "b (chosen)", "split": "test", "ndcg@10": 0.2}]
    lines = format_table(rows).splitlines()
    assert [ln.split()[0] for ln in lines] == ["validation:", "b", "a", "test:", "b"]


def test_tune_chooses_on_validation_and_reports_the_test_split(spark, tmp_path, capsys):
    import pyarrow.parquet as pq

    from item2vec.evaluate import MODELS
    from jobs.tune import main

    small = ["--set", "sample.users=300", "--set", "sample.items=120", "--set",
             "train.max_auto_passes=3", "--set", "train.vector_size=16"]
    code = main(["--output", str(tmp_path), "--run-date", "2026-11-26", *small,
                 "--grid", "train.window=2"])
    assert code == 0
    rows = pq.read_table(tmp_path / "tune-2026-11-26.parquet").to_pylist()
    validation = [r for r in rows if r["split"] == "validation"]
    test = [r for r in rows if r["split"] == "test"]
    assert {r["variant"] for r in validation} == {"defaults", "train.window=2",
                                                  "mllib-defaults"}
    best = max(validation, key=lambda r: r["ndcg@10"])
    assert [r["model"] for r in test] == list(MODELS)
    assert test[0]["variant"] == f"{best['variant']} (chosen)"
    # the validation split is carved from the sessions before the test split, never after
    assert max(r["cutoff"] for r in validation) < test[0]["cutoff"]
    assert len({r["pairs"] for r in test}) == 1  # every model on the same test pairs
    assert all(0 <= r["hr@10"] <= r["hr@20"] <= 1 for r in rows)
    assert "sequential_rules" in capsys.readouterr().out
