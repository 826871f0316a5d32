"""The job's steps in order: read -> sessions -> model -> similar items -> evaluate -> publish.

Stages live in their own modules and take DataFrames and keyword values; this file is the only
one (with jobs/) that reads the Config: it unpacks it into the stages' arguments, passes
DataFrames from step to step, times each step and builds the manifest from what the steps
return. Every write goes through the Publisher.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyspark
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import item2vec
from item2vec import ann, rank, train
from item2vec import cooccurrence as co
from item2vec import corpus as corpus_mod
from item2vec import evaluate as evaluate_mod
from item2vec import events as events_mod
from item2vec import sample as sample_mod
from item2vec import sessions as sessions_mod
from item2vec import similar as similar_mod
from item2vec import vocabulary as vocab_mod
from item2vec.config import Config
from item2vec.errors import BadInput, QualityGateFailed
from item2vec.events import ITEM
from item2vec.progress import Progress
from item2vec.publish import HISTORY_SCHEMA, LATEST, PublishedRun, Publisher, history_rows
from item2vec.sessions import START
from item2vec.train import Wrap, no_wrap
from item2vec.vocabulary import FREQUENCY, INDEX

SCHEMA_VERSION = 3  # 2: similarity.search; 3: similar_items evidence columns, metrics.models
REFERENCE_LISTS, ITEM_COUNTS = "reference_lists", "item_counts"
# What a run keeps for the next run's evaluation (with evaluation on): every list it ranked, the
# published one included, a row per model and item (model, item_index, rec_indexes in rank
# order) by catalogue index (ints write, read and join faster than ids), and the catalogue
# (item_id, item_index, frequency).
REC_INDEXES = "rec_indexes"
# Fewest validation pairs worth scoring tonight's list on (for the regression gate); choosing
# weights needs similar.min_tuning_pairs.
MIN_VALIDATION_PAIRS = 200
# percentile_approx accuracy of the validation split: exact up to 100,000 sessions (every real
# log in bench/), at most 1 session in 100,000 off above; about half the exact split's pass at
# 1M sessions, and the slice only scores weight mixes.
VALIDATION_SPLIT_ACCURACY = 100_000


@dataclass
class RunResult:
    """What a run produced: where it went, its manifest, and a few example lists."""

    location: str
    manifest: dict[str, Any]
    published: bool
    latest: str | None = None
    neighbours: dict[str, list[tuple[Any, float]]] = field(default_factory=dict)


@dataclass
class Built:
    """The lists of one training part: the published ranking and the reference models'."""

    model: train.Model
    counts: DataFrame  # item_id, item_index, frequency over every training item
    similar: DataFrame  # the similar_items dataset
    lists_by_index: DataFrame  # published and reference lists by index (REC_INDEXES)
    similarity: dict[str, Any]  # the manifest's similarity block
    items: int  # distinct training items
    cleanup: list[Callable[[], Any]] = field(default_factory=list)  # caches, broadcasts

    def lists(self, k: int) -> evaluate_mod.Lists:
        """These lists as the evaluation scores them."""
        return lists_for_scoring(self.lists_by_index, self.counts, k=k, items=self.items,
                                 release=self.release)

    def release(self) -> None:
        """Free what building the lists cached, once every output is written."""
        for free in self.cleanup:
            free()
        self.model.release()


def run(spark: SparkSession, cfg: Config, pub: Publisher, *, input_path: str | None,
        run_date: dt.date, progress: Progress, wrap: Wrap = no_wrap,
        items_path: str | None = None) -> RunResult:
    """Run every step and publish. Raises Item2VecError subclasses for the exit codes."""
    started = _now()
    previous = pub.previous()
    events, source, tally, items = read_step(spark, cfg, input_path, run_date, progress)
    sessions, counts = sessions_step(events, cfg, tally, progress)
    method = evaluation_method(cfg, previous, run_date, progress)
    built = model_step(sessions, cfg, progress, wrap=wrap, sessions_count=counts["sessions"])
    with progress.stage("write"):
        datasets = {"vocabulary": built.model.vocab,
                    "item_vectors": train.item_vectors(built.model),
                    "similar_items": built.similar}
        if cfg.evaluate.enabled:  # kept for the next run's previous_run evaluation
            datasets |= {REFERENCE_LISTS: built.lists_by_index, ITEM_COUNTS: built.counts}
        pub.write_datasets(datasets)
    counts.update(vocabulary_size=built.model.size, items_without_vector=built.model.dropped,
                  training_items=built.items,
                  similar_rows=pub.read_dataset(spark, "similar_items").count())
    neighbours = _example_neighbours(pub.read_dataset(spark, "similar_items"), built.model)
    built.release()  # the evaluation reads none of it: its memory is the scoring's
    metrics = evaluate_step(sessions, cfg, method, previous, progress, wrap=wrap)
    if metrics is not None:
        pub.write_json("metrics.json", metrics)
    sessions.unpersist()
    manifest = make_manifest(spark, cfg, run_date=run_date, run_id=pub.run_id,
                             started=started, source=source, counts=counts, built=built,
                             metrics=metrics, timings=progress.timings)
    return finish(pub, cfg, manifest, metrics, progress, items=items_path or items,
                  neighbours=neighbours)


# -- steps -----------------------------------------------------------------------------------
def read_step(spark: SparkSession, cfg: Config, input_path: str | None, run_date: dt.date,
              progress: Progress) -> tuple[DataFrame, dict, Callable, pa.Table | None]:
    """Accepted events (lazy), a description of the input, the rejection tally (filled by the
    one pass that materialises the sessions) and item metadata (embedded sample only)."""
    run_end = run_end_of(run_date)
    with progress.stage("read") as note:
        events, source, items = load_input(spark, cfg, input_path, run_end)
        tagged = events_mod.tag_rejections(events, run_end=run_end,
                                           lookback_days=cfg.input.lookback_days,
                                           event_types=cfg.input.event_types)
        accepted, tally = events_mod.accept(tagged)
        if source.get("files_read") is not None:
            note.append(f"{source['files_read']:,} file(s), {source['bytes_read']:,} bytes")
    return accepted, source, tally, items


def sessions_step(events: DataFrame, cfg: Config, tally: Callable,
                  progress: Progress) -> tuple[DataFrame, dict[str, Any]]:
    """Sessions (persisted: this is the one pass over the log) and the counts so far."""
    with progress.stage("sessions") as note:
        # DataFrame caches stay deserialized (Spark's default for them): Python's MEMORY_AND_DISK
        # serializes every cached batch once more, a copy each time it is built and read
        sessions = sessions_from_events(events, cfg).persist(StorageLevel.MEMORY_AND_DISK_DESER)
        n_sessions, n_tokens = sessions_mod.session_stats(sessions)
        read, rejected, examples = tally()
        events_mod.check_usable(read, rejected, time_unit=cfg.input.time_unit,
                                examples=examples)
        counts = {"events_read": read, "events_rejected": rejected,
                  "events_accepted": read - sum(rejected.values()),
                  "sessions": n_sessions, "tokens": n_tokens}
        note.append(f"{read:,} events ({sum(rejected.values()):,} rejected"
                    f"{' ' + str(rejected) if rejected else ''}), {n_sessions:,} sessions, "
                    f"{n_tokens:,} items in them")
        if not n_sessions:
            sessions.unpersist()
            raise BadInput(f"no sessions with >= session.min_length={cfg.session.min_length} "
                           f"distinct consecutive items among {counts['events_accepted']:,} "
                           f"usable events")
    return sessions, counts


def model_step(sessions: DataFrame, cfg: Config, progress: Progress, *, wrap: Wrap = no_wrap,
               queries: DataFrame | None = None, label: str = "",
               sessions_count: int | None = None) -> Built:
    """Embedding + co-occurrence evidence -> the ranked similar items and the reference lists.

    Items are counted into a catalogue whose integer keys order them by frequency (then id),
    so the vocabulary is its prefix and every later shuffle carries ints, not ids. ``queries``
    (item_id) restricts the lists to those items (the holdout evaluation needs no more); the
    embedding and the evidence still use every session. ``sessions_count``, when known, saves
    a pass over the sessions.
    """
    s, e, v = cfg.similar, cfg.evaluate, cfg.vocabulary
    spark = sessions.sparkSession
    # The latest validation_fraction of sessions scores the weight mixes (and tonight's list,
    # for the regression gate); the evidence they are scored against comes from the rest.
    _, _, cutoff = evaluate_mod.split_by_start(sessions, fraction=s.validation_fraction,
                                               count=sessions_count,
                                               accuracy=VALIDATION_SPLIT_ACCURACY)
    sessions = sessions.withColumn(co.FIT, F.col(START) <= F.lit(cutoff))
    with progress.stage(f"{label}vocabulary") as note:
        catalogue = vocab_mod.assign_indexes(co.item_counts(sessions)).persist()
        counted = catalogue.agg(F.count(F.lit(1)), F.count_if(F.col(FREQUENCY) >= v.min_count))
        items, size = (int(x or 0) for x in counted.first())
        size = min(size, v.max_vocab) if v.max_vocab else size
        note.append(f"{size:,} of {items:,} items with >= {v.min_count} occurrences")
        if size < 2:
            catalogue.unpersist()
            raise BadInput(f"vocabulary has {size} item(s) with >= vocabulary.min_count="
                           f"{v.min_count} occurrences; need at least 2 (lower "
                           f"vocabulary.min_count or give more data)")
        kept = corpus_mod.with_keep(catalogue, vocab_size=size, subsample=cfg.corpus.subsample)
        keyed = corpus_mod.keyed_sessions(sessions, kept, keep=(co.FIT,)).persist(
            StorageLevel.MEMORY_AND_DISK_DESER)
    vocab = catalogue.where(F.col(INDEX) < size)
    model = train.fit_model(keyed, vocab, **train_args(cfg), progress=progress, wrap=wrap,
                            label=label)
    with progress.stage(f"{label}similar") as note:
        windows = co.Windows(near=s.window, forward=s.forward_window, cooc=e.cooc_window,
                             rules=e.rules_window)
        params = rank.Params(k=s.k, candidates=s.candidates, partners=s.partners,
                             weights=rank.Weights(*s.weights, decay=s.forward_decay), mode=s.mode,
                             references=e.enabled or queries is not None, ref_k=max(e.ks),
                             cooc_alpha=e.cooc_alpha, cooc_lambda=e.cooc_lambda,
                             rules_from_forward=windows.rules == windows.forward)
        # the sums the ranking reads, and over the fit part those the validation reads (at
        # every forward decay the weights may be chosen with)
        tuned = s.tune_weights and s.mode != "embedding"
        fit = {*rank.shipped(dataclasses.replace(params, references=False), grid=False),
               *(f"fwd{d}" for d in (rank.GRID_DECAY if tuned else ()))}
        features = fit | set(rank.shipped(params, grid=False))
        gone = sorted(set(range(size)) - set(model.keys.tolist()))  # few, if any
        ranked_items = vocab.where(~F.col(INDEX).isin(gone)).select(F.col(INDEX).alias(ITEM))
        only = None if queries is None else (  # keys of the query items
            catalogue.join(queries, ITEM).select(INDEX).toArrow().column(0).to_numpy())
        look = _lookups(catalogue, model, items)
        lookups = spark.sparkContext.broadcast(look)
        searcher = similar_mod.Searcher(spark, model.matrix, k=s.candidates,
                                        block_bytes=s.block_bytes, search=s.search,
                                        params=ann.params_for(s.search, s))
        clock = time.perf_counter()
        plan = validation_plan(keyed, params, cfg)
        took = {"validation pairs": time.perf_counter() - clock}
        # the evidence tasks also search each item's embedding neighbours (once, for the
        # validation and the ranking) and score the weight mixes on the validation pairs
        finish = rank.ChunkFinish(spark.sparkContext, searcher=searcher, lookups=lookups,
                                  params=dataclasses.replace(params, grid=plan.grid,
                                                             grid_ks=plan.ks),
                                  pairs=plan.pairs, only=only)
        clock = time.perf_counter()
        # buckets follow the data and the cores, not spark.sql.shuffle.partitions (often 200,
        # which on a small log would make hundreds of Python tasks of a few rows each)
        buckets = co.buckets_for(int(look.frequency.sum()), windows.longest,
                                 partitions=spark.sparkContext.defaultParallelism)
        evidence = co.evidence(
            keyed, ranked_items, windows=windows, span=items, features=tuple(features),
            fit=tuple(fit), column=corpus_mod.KEYS, buckets=buckets, finish=finish,
        ).persist(StorageLevel.MEMORY_AND_DISK_DESER)
        pairs = evidence.agg(F.sum("pairs")).first()[0] or 0
        took["evidence"] = time.perf_counter() - clock
        weights, validation = choose_weights(evidence, plan, params, cfg)
        params = dataclasses.replace(params, weights=weights)
        clock = time.perf_counter()
        ranked = wrap("similar", rank.rank_items(evidence, searcher=searcher, lookups=lookups,
                                                 params=params, only=only)
                      ).persist(StorageLevel.MEMORY_AND_DISK_DESER)
        ranked.count()  # once: the published and the reference lists are both read from it
        took["ranking"] = time.perf_counter() - clock
        similar = _similar_items(ranked, catalogue)
        note.append(f"mode {s.mode}, weights {params.weights.describe()}"
                    + (f" (chosen on {validation['pairs']:,} validation pairs)"
                       if validation.get("tuned") else "")
                    + f"; {pairs:,} item pairs; "
                    + ", ".join(f"{name} {sec:.1f}s" for name, sec in took.items()))
    similarity = similarity_info(cfg, model.size, params.weights, validation)
    counts = catalogue.select(ITEM, INDEX, FREQUENCY)
    lists_by_index = ranked.select(
        rank.model_name(F.col(rank.MODEL)).alias(evaluate_mod.MODEL), F.col(ITEM).alias(INDEX),
        F.col(co.OTHER).alias(REC_INDEXES))
    cleanup = [df.unpersist for df in (catalogue, keyed, evidence, ranked)]
    cleanup += [lookups.unpersist, searcher.release, finish.release]
    return Built(model, counts, similar, lists_by_index, similarity, items, cleanup)


def _lookups(catalogue: DataFrame, model: train.Model, items: int) -> rank.Lookups:
    """The per-key arrays the rank tasks read (see rank.Lookups)."""
    by_id = catalogue.orderBy(ITEM).select(INDEX).toArrow().column(0).to_numpy()
    id_rank = np.empty(items, dtype=np.int32)
    id_rank[by_id] = np.arange(items, dtype=np.int32)
    frequency = (catalogue.orderBy(INDEX).select(FREQUENCY).toArrow().column(0).to_numpy()
                 .astype(np.int64))
    row_of_key = np.full(int(model.keys.max(initial=-1)) + 1, -1, dtype=np.int32)
    row_of_key[model.keys] = np.arange(len(model.keys), dtype=np.int32)
    return rank.Lookups(row_of_key, model.keys.astype(np.int32), id_rank, frequency)


def _similar_items(ranked: DataFrame, catalogue: DataFrame) -> DataFrame:
    """rank_items rows (catalogue keys) -> the similar_items dataset, with item ids. Written by
    one task per core, not one per evidence bucket: buckets grow with the log, and readers
    prefer fewer, larger files."""
    ids = catalogue.select(F.col(INDEX).alias(ITEM), F.col(ITEM).alias("_id"))
    other_ids = catalogue.select(F.col(INDEX).alias(co.OTHER), F.col(ITEM).alias("_other"))
    tasks = ranked.sparkSession.sparkContext.defaultParallelism
    published = rank.flat_lists(ranked.where(F.col(rank.MODEL) == 0).coalesce(tasks))
    return (published.join(ids, ITEM).join(other_ids, co.OTHER)
            .select(F.col("_id").alias(ITEM), rank.RANK, F.col("_other").alias(rank.SIMILAR_ITEM),
                    rank.SCORE, rank.COSINE, rank.COOCCURRENCE))


def lists_for_scoring(lists_by_index: DataFrame, counts: DataFrame, *, k: int, items: int,
                      release: Callable[[], None] = lambda: None) -> evaluate_mod.Lists:
    """Lists by catalogue index (see REC_INDEXES) and their run's (item_id, item_index,
    frequency), as the evaluation scores them: by index, the pairs mapped onto it
    (evaluate.Lists.in_keys)."""
    lists = lists_by_index.select(evaluate_mod.MODEL, F.col(INDEX).alias(ITEM),
                                  F.slice(REC_INDEXES, 1, k).alias(evaluate_mod.RECS))
    by_index = counts.select(F.col(INDEX).alias(ITEM), FREQUENCY)
    return evaluate_mod.Lists(lists, co.popularity(by_index, k=k), by_index, items,
                              release=release, keys=counts.select(ITEM, INDEX))


@dataclass(frozen=True)
class ValidationPlan:
    """What the evidence tasks score on the validation slice (see validation_plan)."""

    pairs: tuple[np.ndarray, np.ndarray] | None  # (prev keys, next keys); None: too few
    grid: tuple[rank.Weights, ...]  # the mixes scored, the configured one first
    tune: bool  # choose among them (else the configured weights are only scored)
    count: int  # validation pairs sampled
    ks: tuple[int, ...]


def validation_plan(keyed: DataFrame, params: rank.Params, cfg: Config) -> ValidationPlan:
    """The validation slice: next-item pairs of the latest sessions (a sample of at most about
    similar.max_validation_pairs, on the driver), ranked from the evidence of the earlier ones
    (the embedding is the run's own, trained on every session: cheap, and on three real logs
    it cost at most 0.0005 HR@20 against one trained without the slice). With
    similar.tune_weights (not in embedding mode) and enough pairs every mix of
    rank.weight_grid is scored; otherwise the configured weights only."""
    s = cfg.similar
    later = keyed.where(~F.col(co.FIT))
    sample, _ = evaluate_mod.sample_pairs(
        evaluate_mod.session_pairs(later, items=corpus_mod.KEYS),
        max_pairs=s.max_validation_pairs, seed=cfg.train.seed)
    table = sample.toArrow()
    n = table.num_rows
    ks = tuple(sorted({min(10, s.k), s.k}))
    tune = s.tune_weights and s.mode != "embedding" and n >= s.min_tuning_pairs
    grid = (rank.weight_grid(params.weights, mode=s.mode) if tune
            else [rank.mode_weights(s.mode, params.weights)])
    pairs = None if n < MIN_VALIDATION_PAIRS else tuple(
        table.column(c).to_numpy() for c in (evaluate_mod.PREV, evaluate_mod.NEXT))
    return ValidationPlan(pairs, tuple(grid), tune, n, ks)


def choose_weights(evidence: DataFrame, plan: ValidationPlan, params: rank.Params,
                   cfg: Config) -> tuple[rank.Weights, dict[str, Any]]:
    """The mix with the best NDCG@k on the validation slice (when tuning), from the sums the
    evidence tasks kept (rank.ChunkFinish). Returns (weights, the manifest's
    similarity.validation block)."""
    s = cfg.similar
    if plan.pairs is None:
        return params.weights, {"tuned": False, "pairs": plan.count,
                                "reason": f"fewer than {MIN_VALIDATION_PAIRS} pairs"}
    results = rank.grid_metrics(evidence, plan.grid, ks=plan.ks, pairs=plan.count)
    objective = f"ndcg@{s.k}"
    best = max(range(len(plan.grid)), key=lambda i: (results[i][objective], -i))
    block = {"tuned": plan.tune, "pairs": plan.count, "objective": objective,
             **{key: round(v, 6) for key, v in results[best].items() if key != "pairs"}}
    if plan.tune:
        block["configured"] = {key: round(v, 6) for key, v in results[0].items()
                               if key != "pairs"}
    elif s.tune_weights and s.mode != "embedding":
        block["reason"] = f"fewer than similar.min_tuning_pairs={s.min_tuning_pairs} pairs"
    return (plan.grid[best] if plan.tune else params.weights), block


def evaluate_step(sessions: DataFrame, cfg: Config, method: str | None,
                  previous: PublishedRun | None, progress: Progress, *,
                  wrap: Wrap = no_wrap) -> dict[str, Any] | None:
    """The manifest's ``metrics`` (None when evaluation is off)."""
    if method is None:
        return None
    e = cfg.evaluate
    ks = tuple(sorted(set(e.ks)))
    with progress.stage("evaluate") as note:
        if method == "previous_run":
            assert previous is not None
            metrics = evaluate_mod.previous_run(
                sessions, previous_lists(sessions.sparkSession, previous, k=max(ks)),
                since=run_end_of(dt.date.fromisoformat(previous.manifest["run_date"])),
                evaluated_run=previous.pointer, max_test_pairs=e.max_test_pairs,
                seed=cfg.train.seed, ks=ks, progress=progress)
            metrics["similarity"] = previous.manifest.get("similarity")
        else:
            scored: dict[str, Any] = {}

            def build(train_sessions: DataFrame, queries: DataFrame) -> evaluate_mod.Lists:
                built = model_step(train_sessions, cfg, progress, wrap=wrap, queries=queries,
                                   label="eval ")
                scored["similarity"] = built.similarity
                return built.lists(max(ks))

            metrics = evaluate_mod.holdout(sessions, build=build, test_fraction=e.test_fraction,
                                           max_test_pairs=e.max_test_pairs, seed=cfg.train.seed,
                                           ks=ks, progress=progress) | scored
        note.append(evaluate_mod.summary_line(metrics))
    return metrics


def evaluation_method(cfg: Config, previous: PublishedRun | None, run_date: dt.date,
                      progress: Progress) -> str | None:
    """"previous_run", "holdout" or None (off), from evaluate.method and what is published."""
    e = cfg.evaluate
    if not e.enabled:
        return None
    if e.method == "holdout":
        return "holdout"
    usable = (previous is not None and previous.manifest is not None
              and previous.manifest.get("run_date", "9999") < run_date.isoformat()
              and REFERENCE_LISTS in (previous.manifest.get("datasets") or []))
    if usable:
        return "previous_run"
    if e.method == "previous_run":
        why = ("nothing is published yet" if previous is None else
               f"{previous.pointer} is not an earlier date with reference lists")
        progress.say(f"evaluate.method previous_run: {why}; evaluating on a holdout instead")
    return "holdout"


def previous_lists(spark: SparkSession, previous: PublishedRun, *, k: int) -> evaluate_mod.Lists:
    """The lists a published run kept, read back for scoring on the sessions after it."""
    def read(name: str) -> DataFrame:
        return spark.read.parquet(f"{previous.uri}/{name}")

    counts = read(ITEM_COUNTS)
    items = int((previous.manifest or {}).get("counts", {}).get("training_items") or 0)
    if INDEX in counts.columns:
        return lists_for_scoring(read(REFERENCE_LISTS), counts, k=k,
                                 items=items or counts.count())
    # kept by a version before the lists were kept by catalogue index: published list from
    # similar_items, reference lists and counts by item id
    published = read("similar_items").select(
        F.lit("published").alias(evaluate_mod.MODEL), ITEM, rank.RANK,
        F.col(rank.SIMILAR_ITEM).alias(co.REC))
    refs = read(REFERENCE_LISTS).select(evaluate_mod.MODEL, ITEM, co.RANK, co.REC)
    entries = published.unionByName(refs).where(F.col(co.RANK) <= k)  # as lists_for_scoring
    counts = counts.select(ITEM, FREQUENCY)
    return evaluate_mod.Lists(evaluate_mod.lists_from_entries(entries),
                              co.popularity(counts, k=k), counts, items or counts.count())


def finish(pub: Publisher, cfg: Config, manifest: dict[str, Any],
           metrics: dict[str, Any] | None, progress: Progress, *, items: Any,
           neighbours: dict[str, list]) -> RunResult:
    """Gate, then publish (or reject), record the metric history, prune."""
    problem = gates(cfg, metrics, manifest["similarity"].get("validation") or {}, pub.history())
    if problem:
        kept = pub.reject(manifest)
        pub.append_history(_history(manifest))
        raise QualityGateFailed(f"quality gate failed: {problem}; run kept in {kept}")
    with progress.stage("publish") as note:
        hook = _report_hook(pub, cfg, manifest, items, progress) if cfg.report.enabled \
            else None
        location = pub.publish(manifest, before_commit=hook)
        pub.append_history(_history(manifest))
        pruned = pub.prune(cfg.output.retention_days)
        note.append(location + (f"; pruned {', '.join(pruned)}" if pruned else ""))
    latest = (pub.store.read_text(pub.store.join(LATEST)) or "").strip() or None
    return RunResult(location, manifest, True, latest, neighbours)


def gates(cfg: Config, metrics: dict[str, Any] | None, validation: dict[str, Any],
          history: pa.Table) -> str | None:
    """Why the run must not be published, or None: the quality gate on the evaluation, then
    the regression gate on the evaluation and on tonight's list's validation score."""
    g = cfg.gate
    ks = tuple(sorted(set(cfg.evaluate.ks)))
    k = min(ks)
    problem = evaluate_mod.gate(metrics, ks=ks,
                                min_lift_over_popularity=g.min_lift_over_popularity,
                                min_lift_over_cooc=g.min_lift_over_cooc, min_hr=g.min_hr)
    checks = [(validation.get("hr@10"), "validation", 10,
               "tonight's list's validation HR@10")]
    if metrics:
        published = (metrics.get("models") or {}).get("published", {})
        checks.insert(0, (published.get(f"hr@{k}"), metrics["method"], k,
                          f"published HR@{k} ({metrics['method']})"))
    for hr, method, at, what in checks:
        problem = problem or evaluate_mod.regression(
            hr, history, method=method, k=at, max_drop=g.max_drop_vs_previous,
            runs=g.history_runs, what=what)
    return problem


def _history(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's metric-history rows: one per evaluated model, and tonight's list on the
    validation slice (method "validation")."""
    rows = history_rows(manifest)
    v = manifest["similarity"].get("validation") or {}
    if v.get("hr@10") is not None:
        rows.append({"run_date": manifest["run_date"], "run_id": manifest["run_id"],
                     "finished_at": manifest.get("finished_at"), "status": manifest["status"],
                     "method": "validation", "model": "published", "pairs": v["pairs"],
                     "hr_10": v["hr@10"], "mrr_10": v["mrr@10"], "ndcg_10": v["ndcg@10"]})
    return rows


def make_manifest(spark: SparkSession, cfg: Config, *, run_date: dt.date, run_id: str,
                  started: str, source: dict[str, Any], counts: dict[str, Any], built: Built,
                  metrics: dict[str, Any] | None, timings: dict[str, float]) -> dict[str, Any]:
    """The run's manifest.json (status and finished_at are set by the publisher)."""
    model = built.model
    datasets = ["vocabulary", "item_vectors", "similar_items"]
    if cfg.evaluate.enabled:
        datasets += [REFERENCE_LISTS, ITEM_COUNTS]
    manifest = {
        "schema_version": SCHEMA_VERSION, "run_date": run_date.isoformat(), "run_id": run_id,
        "status": "running", "started_at": started, "finished_at": None,
        "config": cfg.to_dict(), "input": source, "counts": counts,
        "timings_s": dict(timings), "spark_version": spark.version, "versions": _versions(),
        "similarity": built.similarity, "datasets": datasets,
        "training": {"copies": model.copies, "iterations": model.iterations,
                     "num_partitions": model.partitions, "seed": cfg.train.seed},
    }
    if metrics is not None:
        manifest["metrics"] = metrics
    return manifest


def similarity_info(cfg: Config, items: int, weights: rank.Weights,
                    validation: dict[str, Any]) -> dict[str, Any]:
    """The manifest's similarity block: how similar_items was ranked and searched."""
    s = cfg.similar
    info: dict[str, Any] = {
        "mode": s.mode, "metric": "cosine", "k": s.k, "search": s.search,
        "candidates": s.candidates, "partners": s.partners, "window": s.window,
        "weights": rank.mode_weights(s.mode, weights).describe(),
        "weights_source": "validation" if validation.get("tuned") else "config",
        "validation": validation,
    }
    params = ann.params_for(s.search, s)
    if params is not None:
        info[s.search] = ann.describe(params, items)
    return info


def train_args(cfg: Config) -> dict[str, Any]:
    """The config keys train.fit_model takes, as keyword values."""
    c, t = cfg.corpus, cfg.train
    return {"subsample": c.subsample, "copies": c.copies, "max_auto_copies": c.max_auto_copies,
            "corpus_mode": c.mode,
            "min_sentence_length": c.min_sentence_length, "vector_size": t.vector_size,
            "window": t.window, "iterations": t.iterations, "auto_tokens": t.auto_tokens,
            "max_auto_passes": t.max_auto_passes, "step_size": t.step_size,
            "num_partitions": t.num_partitions, "tokens_per_partition": t.tokens_per_partition,
            "seed": t.seed, "max_sentence_length": t.max_sentence_length}


# -- input -----------------------------------------------------------------------------------
def load_input(spark: SparkSession, cfg: Config, input_path: str | None,
               run_end: dt.datetime) -> tuple[DataFrame, dict[str, Any], pa.Table | None]:
    """Canonical events, a description of the input, and item metadata (sample only)."""
    if input_path is None:
        params = dict(vars(cfg.sample)) | {"end": run_end}
        info = {"path": None, "format": "embedded-sample",
                "fingerprint": _sha(params | {"end": str(run_end)})}
        return sample_events(spark, params), info, sample_mod.items_table(**params)
    i = cfg.input
    events, source = events_mod.open_events(
        spark, input_path, fmt=i.format, user_col=i.user_col, item_col=i.item_col,
        time_col=i.time_col, event_type_col=i.event_type_col, event_types=i.event_types,
        id_type=i.id_type, time_unit=i.time_unit, time_zone=i.time_zone,
        partition_col=i.partition_col, run_end=run_end, lookback_days=i.lookback_days)
    return events, source, None


SAMPLE_SCHEMA = "user_id string, item_id string, timestamp timestamp, event_type string"


def sample_events(spark: SparkSession, params: dict[str, Any]) -> DataFrame:
    """The embedded sample, generated by the tasks (one user chunk each), so the log never
    travels from the driver inside a task."""
    chunks = sample_mod.chunk_count(**params)

    def generate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for chunk in batch.column(0).to_numpy():
                yield from sample_mod.chunk_events(int(chunk), **params).to_batches()

    parts = min(chunks, spark.sparkContext.defaultParallelism)
    return spark.range(0, chunks, 1, numPartitions=parts).mapInArrow(generate, SAMPLE_SCHEMA)


def run_end_of(run_date: dt.date) -> dt.datetime:
    """Events at or after this instant (midnight UTC after the run date) are rejected."""
    return dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def input_sessions(spark: SparkSession, cfg: Config, input_path: str | None,
                   run_date: dt.date) -> DataFrame:
    """Read, filter and sessionise without counting: what the evaluate and tune jobs need."""
    run_end = run_end_of(run_date)
    events, _, _ = load_input(spark, cfg, input_path, run_end)
    tagged = events_mod.tag_rejections(events, run_end=run_end,
                                       lookback_days=cfg.input.lookback_days,
                                       event_types=cfg.input.event_types)
    return sessions_from_events(events_mod.accepted(tagged), cfg)


def sessions_from_events(events: DataFrame, cfg: Config) -> DataFrame:
    s = cfg.session
    return sessions_mod.sessionize(events, gap_minutes=s.gap_minutes,
                                   dedupe_consecutive=s.dedupe_consecutive,
                                   min_length=s.min_length, max_length=s.max_length,
                                   long_policy=s.long_policy)


# -- report, summary ---------------------------------------------------------------------------
def _report_hook(pub: Publisher, cfg: Config, manifest: dict[str, Any], items: Any,
                 progress: Progress) -> Any:
    """A before_commit hook drawing the report into the complete run (the metric trend
    includes tonight's rows, which are appended once the run is published)."""
    def write(location: str) -> None:
        try:  # the report extra is optional: its imports fail at import or at drawing time
            from item2vec.report import build_report

            tonight = pa.Table.from_pylist(_history(manifest), schema=HISTORY_SCHEMA)
            history = pa.concat_tables([pub.history(), tonight])
            paths = build_report(location, filesystem=pub.filesystem, items=items,
                                 top_n=cfg.report.top_n, seed=cfg.train.seed, history=history,
                                 trend_runs=cfg.report.trend_runs)
        except ImportError as exc:
            progress.say(f"report skipped: {exc}")
            return
        progress.say(f"report: {paths['html']}")

    return write


def _example_neighbours(similar: DataFrame, model: train.Model, n_items: int = 3,
                        k: int = 5) -> dict[str, list]:
    """Top-k of the most frequent items, for the closing summary (read back from the run)."""
    frequent = model.vocab.where(F.col("item_index") < n_items).select(ITEM)
    rows = (similar.join(frequent, ITEM).where(F.col(rank.RANK) <= k)
            .orderBy(ITEM, rank.RANK).collect())
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(str(r[ITEM]), []).append((r[rank.SIMILAR_ITEM], float(r[rank.SCORE])))
    return out


def _sha(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True,
                                                 default=str).encode()).hexdigest()


def _versions() -> dict[str, str]:
    return {"item2vec": item2vec.__version__, "python": platform.python_version(),
            "pyspark": pyspark.__version__, "numpy": np.__version__, "pyarrow": pa.__version__}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def summary(result: RunResult, *, output: str) -> str:
    """The closing summary printed by the job: counts, metrics, example lists, where to look
    and what to try next."""
    m = result.manifest
    c = m["counts"]
    rejected = sum(c.get("events_rejected", {}).values())
    sim = m.get("similarity", {})
    weights = sim.get("weights", {})
    lines = [
        f"item2vec run {m['run_date']} {'published' if result.published else 'NOT published'}",
        f"  events read {c.get('events_read', 0):,}  rejected {rejected:,}  "
        f"sessions {c.get('sessions', 0):,}  tokens {c.get('tokens', 0):,}",
        f"  vocabulary {c.get('vocabulary_size', 0):,} items (of {c.get('training_items', 0):,} "
        f"seen)  similar rows {c.get('similar_rows', 0):,}",
        f"  similar items: {sim.get('mode')} ranking, weights "
        + ", ".join(f"{k} {v:g}" for k, v in weights.items())
        + f" ({sim.get('weights_source')})",
        "  stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in m["timings_s"].items()),
    ]
    metrics = m.get("metrics") or {}
    if metrics.get("models"):
        lines.append(f"  evaluation ({metrics.get('method')}, {metrics.get('pairs', 0):,} "
                     f"next-item pairs, all models on the same pairs):")
        lines += ["    " + row for row in evaluate_mod.metrics_table(metrics).splitlines()]
    for item, neighbours in result.neighbours.items():
        shown = ", ".join(f"{n} ({s:.2f})" for n, s in neighbours)
        lines.append(f"  similar to {item}: {shown}")
    lines += [f"  outputs: {result.location}",
              f"  LATEST:  {output.rstrip('/')}/LATEST -> {result.latest}"]
    if (m.get("config", {}).get("report", {}) or {}).get("enabled"):
        lines.append(f"  report:  {result.location}/report/report.html")
    lines.append("  next: ./spark-submit.sh --input YOUR_EVENTS --output OUT_DIR "
                 "[--set input.item_col=sku ...]   (docs/config.md lists every key)")
    return "\n".join(lines)
