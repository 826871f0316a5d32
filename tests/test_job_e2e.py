"""The whole job through main(): outputs checked against CONTRACT.md (version 3) with pyarrow
only, on the embedded sample."""

import datetime as dt
import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from pyspark.sql import functions as F

from item2vec import cli, config, pipeline, sample
from item2vec.evaluate import MODELS
from item2vec.progress import Progress
from item2vec.publish import PublishedRun
from jobs.run import main

RUN_DATE = "2026-11-26"
# On a log this small the lists' lead over popularity is thin; the gate has its own tests.
SMALL = ["--set", "sample.users=800", "--set", "sample.items=300", "--set", "sample.categories=6",
         "--set", "evaluate.max_test_pairs=5000", "--set", "gate.min_lift_over_popularity=0"]
CFG = config.load(overrides=[a for a in SMALL if a != "--set"])
DATASETS = ("vocabulary", "item_vectors", "similar_items")


def _read(path: Path) -> pa.Table:
    return ds.dataset(str(path), format="parquet").to_table()


def latest_run(out: Path) -> Path:
    """The run LATEST names (a reader resolves it relative to the output root)."""
    return out / (out / "LATEST").read_text().strip()


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "out"
    assert main(["--output", str(out), "--run-date", RUN_DATE, *SMALL]) == 0
    return out


@pytest.fixture(scope="module")
def run(published):
    return latest_run(published)


def test_layout_latest_and_success(published, run):
    pointer = (published / "LATEST").read_text().strip()
    assert pointer.startswith(f"dt={RUN_DATE}/run=")
    for name in (*DATASETS, "manifest.json", "_SUCCESS"):
        assert (run / name).exists(), name
    assert (published / f"dt={RUN_DATE}" / "CURRENT").read_text().strip() == run.name
    assert not (published / "_LOCK").exists()
    assert sorted(p.name for p in (published / f"dt={RUN_DATE}").iterdir()) == [
        "CURRENT", run.name]  # nothing else: no leftovers of the run's work


def test_schemas_are_plain_parquet_types(run):
    vocab, vectors, similar = (_read(run / n) for n in DATASETS)
    assert vocab.schema.field("item_index").type == pa.int32()
    assert vocab.schema.field("frequency").type == pa.int64()
    vector_type = vectors.schema.field("vector").type
    assert pa.types.is_list(vector_type) and vector_type.value_type == pa.float32()
    assert similar.schema.names == ["item_id", "rank", "similar_item_id", "score", "cosine",
                                    "cooccurrence"]
    assert similar.schema.field("rank").type == pa.int32()
    assert similar.schema.field("score").type == pa.float32()
    assert similar.schema.field("cosine").type == pa.float32()
    assert similar.schema.field("cooccurrence").type == pa.int64()
    assert vocab.schema.field("item_id").type == pa.string()
    assert similar.schema.field("similar_item_id").type == pa.string()


def test_vocabulary_and_vectors_agree(run):
    vocab = _read(run / "vocabulary").sort_by("item_index")
    vectors = _read(run / "item_vectors").sort_by("item_index")
    v = vocab.num_rows
    assert vocab.column("item_index").to_pylist() == list(range(v))
    freq = vocab.column("frequency").to_numpy()
    assert np.all(np.diff(freq) <= 0)  # most frequent first
    assert vectors.column("item_id").to_pylist() == vocab.column("item_id").to_pylist()
    dims = {len(x) for x in vectors.column("vector").to_pylist()}
    assert dims == {CFG.train.vector_size}


def _lists(similar: pa.Table) -> dict:
    rows: dict = {}
    for item, rank, other, score, cos, co in zip(*(similar.column(c).to_pylist() for c in (
            "item_id", "rank", "similar_item_id", "score", "cosine", "cooccurrence")),
            strict=True):
        rows.setdefault(item, []).append((rank, other, score, cos, co))
    return {item: sorted(lst) for item, lst in rows.items()}


def test_similar_items_invariants(run):
    vocab = set(_read(run / "vocabulary").column("item_id").to_pylist())
    v = len(vocab)
    lists = _lists(_read(run / "similar_items"))
    k = min(CFG.similar.k, v - 1)
    assert vocab <= set(lists)  # every vocabulary item has a list ...
    assert len(lists) > v  # ... and so do items below min_count that co-occur with others
    for item, lst in lists.items():
        ranks = [r for r, *_ in lst]
        assert ranks == list(range(1, len(lst) + 1))
        assert len(lst) == k if item in vocab else 1 <= len(lst) <= CFG.similar.k
        assert item not in [o for _, o, *_ in lst]
        scores = [s for _, _, s, _, _ in lst]
        assert all(a >= b for a, b in itertools.pairwise(scores))
        for _, other, _, cos, co in lst:
            assert (cos is None) == (item not in vocab or other not in vocab)
            assert co >= 0
            if item not in vocab:  # no vector: its neighbours come from co-occurrence alone
                assert co > 0


def test_cooccurrence_column_counts_the_window(run):
    """The published cooccurrence equals a count over the training sessions, done here."""
    cfg = CFG
    end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    events, _ = sample.generate(end=end, **vars(cfg.sample))
    lists = _lists(_read(run / "similar_items"))
    item = max(lists, key=lambda i: sum(c for *_, c in lists[i]))
    by_user: dict = {}
    rows = sorted(zip(*(events.column(c).to_pylist() for c in ("user_id", "timestamp",
                                                               "item_id")), strict=True))
    for user, ts, it in rows:
        by_user.setdefault(user, []).append((ts, it))
    counts: dict = {}
    gap = dt.timedelta(minutes=cfg.session.gap_minutes)
    for evs in by_user.values():
        sessions, cur, last = [], [], None
        for ts, it in evs:
            if last is not None and ts - last > gap:
                sessions.append(cur)
                cur = []
            if not cur or cur[-1] != it:
                cur.append(it)
            last = ts
        sessions.append(cur)
        for s in sessions:
            if len(s) < cfg.session.min_length:
                continue
            for a, b in itertools.combinations(range(len(s)), 2):
                if b - a <= cfg.similar.window and item in (s[a], s[b]) and s[a] != s[b]:
                    other = s[b] if s[a] == item else s[a]
                    counts[other] = counts.get(other, 0) + 1
    assert {o: c for _, o, _, _, c in lists[item]} == {o: counts.get(o, 0)
                                                        for _, o, *_ in lists[item]}


def test_manifest_has_the_contract_keys(run):
    m = json.loads((run / "manifest.json").read_text())
    for key in ("schema_version", "run_date", "status", "started_at", "finished_at", "config",
                "counts", "timings_s", "spark_version", "metrics", "similarity"):
        assert key in m, key
    assert m["schema_version"] == 3
    assert m["status"] == "published" and m["run_date"] == RUN_DATE
    for key in ("events_read", "events_rejected", "sessions", "tokens", "vocabulary_size",
                "similar_rows"):
        assert key in m["counts"], key
    assert m["counts"]["similar_rows"] == _read(run / "similar_items").num_rows
    assert m["config"]["sample"]["users"] == 800
    sim = m["similarity"]
    assert sim["mode"] == "hybrid" and set(sim["weights"]) == {"cooccurrence", "forward",
                                                               "cosine", "forward_decay"}
    assert sim["weights_source"] in ("validation", "config")
    metrics = m["metrics"]
    assert metrics["method"] == "holdout" and metrics["evaluated_run"] is None  # a first run
    assert list(metrics["models"]) == list(MODELS)
    for name, values in metrics["models"].items():
        assert 0 <= values["hr@10"] <= values["hr@20"] <= 1, name
        assert 0 <= values["coverage@10"] <= values["coverage@20"] <= 1, name
    assert metrics["pairs"] > 1000
    assert json.loads((run / "metrics.json").read_text()) == metrics
    for stage in ("read", "sessions", "train", "similar", "write", "evaluate", "eval train",
                  "eval similar", "eval score"):
        assert m["timings_s"][stage] > 0, stage
    assert dt.datetime.fromisoformat(m["finished_at"].replace("Z", "+00:00"))


def test_published_list_beats_the_embedding_alone(run):
    models = json.loads((run / "manifest.json").read_text())["metrics"]["models"]
    assert models["published"]["hr@10"] > models["embedding"]["hr@10"]
    assert models["published"]["hr@10"] > models["popularity"]["hr@10"]


def test_planted_categories_are_learned(run):
    """Neighbours of frequent items share their category far more often than chance."""
    end = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    _, items = sample.generate(end=end, **vars(CFG.sample))
    category = dict(zip(items.column("item_id").to_pylist(),
                        items.column("category").to_pylist(), strict=True))
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


def test_rerun_same_date_publishes_a_new_run_and_keeps_the_old_one_readable(published):
    before = latest_run(published)
    old_id = json.loads((before / "manifest.json").read_text())["run_id"]
    assert main(["--output", str(published), "--run-date", RUN_DATE, *SMALL,
                 "--set", "evaluate.enabled=false", "--set", "train.iterations=1"]) == 0
    after = latest_run(published)
    m = json.loads((after / "manifest.json").read_text())
    assert after != before and m["run_id"] != old_id and "metrics" not in m
    assert "reference_lists" not in m["datasets"]  # evaluation off: nothing kept for it
    # the superseded run stays readable until a later run prunes it
    assert (before / "_SUCCESS").exists()
    assert sorted(p.name for p in published.iterdir() if p.name.startswith("dt=")) == [
        f"dt={RUN_DATE}"]


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
    code = main(["--output", str(published), "--run-date", "2026-11-27", *SMALL,
                 "--set", "gate.min_hr=0.99", "--set", "train.max_auto_passes=2"])
    assert code == 3
    assert (published / "LATEST").read_text() == latest
    assert not (published / "dt=2026-11-27" / "CURRENT").exists()
    kept = list((published / "_rejected").glob("dt=2026-11-27-*"))
    assert len(kept) == 1
    m = json.loads((kept[0] / "manifest.json").read_text())
    assert m["status"] == "rejected" and m["metrics"]["models"]["published"]["hr@10"] < 0.99
    run_dir = published / (kept[0] / "RUN").read_text().strip()
    assert (run_dir / "similar_items").is_dir() and not (run_dir / "_SUCCESS").exists()


def test_run_date_defaults_to_the_last_completed_utc_day():
    now = dt.datetime(2026, 11, 27, 2, 30, tzinfo=dt.UTC)  # a 02:30 cron run
    assert cli.last_complete_day(now) == dt.date(2026, 11, 26)
    late = dt.datetime(2026, 11, 27, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert cli.last_complete_day(late) == dt.date(2026, 11, 27)  # 04:59 UTC on the 28th
    parser = cli.job_parser("item2vec", None)
    assert parser.parse_args([]).run_date == cli.last_complete_day()


def test_job_draws_the_report_into_the_published_run(spark, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    assert main(["--output", str(out), "--run-date", RUN_DATE, *SMALL,
                 "--set", "evaluate.enabled=false", "--set", "train.max_auto_passes=2",
                 "--set", "report.enabled=true", "--set", "report.top_n=100"]) == 0
    report = latest_run(out) / "report"
    html = (report / "report.html").read_text()
    assert (report / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "projector" / "vectors.tsv").exists()
    assert latest_run(out).name in html


@pytest.fixture(scope="module")
def nightly(spark, tmp_path_factory):
    """Three nights on one growing log: night 1 (first run: holdout), night 2 (scores night 1's
    list on the day since), night 3 with a deliberately bad config."""
    d = tmp_path_factory.mktemp("nightly")
    end = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)  # events up to the end of 2026-11-10
    sample.write_parquet(d / "log", users=1500, items=300, categories=6, sessions_per_user=6.0,
                         session_length=8.0, zipf_exponent=1.0, noise=0.1, drift=0.05, days=10,
                         end=end, seed=5)
    out = d / "out"
    common = ["--input", str(d / "log" / "events"), "--output", str(out),
              "--set", "gate.min_lift_over_popularity=0", "--set", "evaluate.max_test_pairs=5000",
              "--set", "train.max_auto_passes=6"]
    codes = [main([*common, "--run-date", "2026-11-08"]),
             main([*common, "--run-date", "2026-11-09"])]
    return {"out": out, "common": common, "codes": codes}


def test_second_night_scores_the_first_nights_list(nightly):
    assert nightly["codes"] == [0, 0]
    out = nightly["out"]
    second = json.loads((latest_run(out) / "manifest.json").read_text())
    first_pointer = (out / "dt=2026-11-08" / "CURRENT").read_text().strip()
    assert second["metrics"]["method"] == "previous_run"
    assert second["metrics"]["evaluated_run"] == f"dt=2026-11-08/{first_pointer}"
    assert second["metrics"]["test"]["since"].startswith("2026-11-09")
    assert list(second["metrics"]["models"]) == list(MODELS)
    assert second["metrics"]["pairs"] > 200
    first = json.loads((out / "dt=2026-11-08" / first_pointer / "manifest.json").read_text())
    assert first["metrics"]["method"] == "holdout" and first["metrics"]["evaluated_run"] is None
    # no second model was trained: the night's only training stages are its own
    assert "eval train" not in second["timings_s"] and "eval train" in first["timings_s"]


def test_lists_kept_by_an_earlier_version_by_item_id_score_the_same(nightly, spark, tmp_path):
    """Night 1 kept its lists by catalogue index; the same lists kept the earlier way (by item
    id: reference lists without the published one, counts without the index) score the same
    on night 2's sessions, so the first night after an upgrade still evaluates yesterday."""
    out = nightly["out"]
    pointer = (out / "dt=2026-11-08" / "CURRENT").read_text().strip()
    run = out / "dt=2026-11-08" / pointer
    manifest = json.loads((run / "manifest.json").read_text())
    counts = spark.read.parquet(str(run / "item_counts"))
    assert counts.columns == ["item_id", "item_index", "frequency"]
    kept = spark.read.parquet(str(run / "reference_lists"))
    assert {r[0] for r in kept.select("model").distinct().collect()} == set(MODELS[:-1])
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("reference_lists", "item_counts"))
    ids = counts.select("item_index", "item_id")
    recs = counts.select(F.col("item_index").alias("rec_index"),
                         F.col("item_id").alias("rec_item"))
    entries = kept.select("model", "item_index", F.posexplode("rec_indexes").alias("pos",
                                                                                   "rec_index"))
    (entries.where(F.col("model") != "published").join(ids, "item_index").join(recs, "rec_index")
     .select("model", "item_id", (F.col("pos") + 1).alias("rank"), "rec_item",
             F.lit(1.0).alias("score"))
     .write.parquet(str(old / "reference_lists")))
    counts.select("item_id", "frequency").write.parquet(str(old / "item_counts"))
    cfg = config.load(None, [a for a in nightly["common"] if "=" in a])
    sessions = pipeline.input_sessions(spark, cfg, nightly["common"][1], dt.date(2026, 11, 9))
    scored = [pipeline.evaluate_step(sessions, cfg, "previous_run", PublishedRun(
        pointer=pointer, uri=str(path), path=str(path), manifest=manifest),
        Progress(io.StringIO()))["models"] for path in (run, old)]
    assert scored[0] == scored[1]
    second = json.loads((out / "dt=2026-11-09").joinpath(
        (out / "dt=2026-11-09" / "CURRENT").read_text().strip(), "manifest.json").read_text())
    assert scored[0] == second["metrics"]["models"]  # what night 2 itself reported


def test_a_regression_exits_3_with_the_drop_and_history_keeps_every_night(nightly, capsys):
    out = nightly["out"]
    latest = (out / "LATEST").read_text()
    capsys.readouterr()
    code = main([*nightly["common"], "--run-date", "2026-11-10",
                 "--set", 'similar.mode="embedding"', "--set", "train.vector_size=2",
                 "--set", "train.max_auto_passes=1", "--set", "train.step_size=0.001"])
    err = capsys.readouterr().err
    assert code == 3, err
    line = next(ln for ln in err.splitlines() if ln.startswith("item2vec: error: "))
    assert "quality gate failed: tonight's list's validation HR@10" in line
    assert "% below the median" in line and "of the last 2 published run(s)" in line
    assert (out / "LATEST").read_text() == latest
    history = ds.dataset(str(out / "_metrics"), format="parquet").to_table().to_pylist()
    nights = {(r["run_date"], r["status"]) for r in history}
    assert nights == {("2026-11-08", "published"), ("2026-11-09", "published"),
                      ("2026-11-10", "rejected")}
    methods = {(r["run_date"], r["method"]) for r in history if r["model"] == "published"}
    assert methods == {("2026-11-08", "holdout"), ("2026-11-08", "validation"),
                       ("2026-11-09", "previous_run"), ("2026-11-09", "validation"),
                       ("2026-11-10", "previous_run"), ("2026-11-10", "validation")}


def test_only_the_pipeline_imports_the_pipeline():
    """Imports point one way: stages never import item2vec.pipeline."""
    import ast

    root = Path(__file__).resolve().parents[1] / "item2vec"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "pipeline.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == "item2vec.pipeline" or n.startswith("item2vec.pipeline.") for n in names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
