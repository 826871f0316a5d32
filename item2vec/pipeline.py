"""The job's stages in order: read -> sessions -> vocabulary -> corpus -> train -> similar ->
evaluate -> publish. Each stage is a pure function of its module; this file only wires them,
times them and fills the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyspark
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import item2vec
from item2vec import ann
from item2vec import corpus as corpus_mod
from item2vec import events as events_mod
from item2vec import sample as sample_mod
from item2vec import sessions as sessions_mod
from item2vec import similar as similar_mod
from item2vec import train as train_mod
from item2vec import vocabulary as vocab_mod
from item2vec.config import Config
from item2vec.errors import BadInput, QualityGateFailed
from item2vec.faults import fail_first_attempt
from item2vec.progress import Progress
from item2vec.publish import Publisher
from item2vec.storage import Storage

SCHEMA_VERSION = 2  # 2: similarity.search (+ similarity.ivf / similarity.hnsw)


@dataclass
class RunResult:
    """What a run produced: where it went and its manifest."""

    output_dir: str
    manifest: dict[str, Any]
    published: bool
    neighbours: dict[str, list[tuple[Any, float]]] = field(default_factory=dict)


@dataclass
class Model:
    """A trained embedding: final vocabulary, vectors (DataFrame and matrix), counts."""

    vocab: DataFrame  # item_id, item_index, frequency
    item_vectors: DataFrame  # item_id, item_index, frequency, vector
    matrix: np.ndarray  # V x dim, row i = item_index i
    dropped: int  # vocabulary items that got no vector (removed from every corpus copy)
    copies: int  # corpus copies actually used
    iterations: int  # training iterations actually used
    partitions: int  # MLlib numPartitions actually used


def load_input(spark: SparkSession, cfg: Config, input_path: str | None,
               run_end: dt.datetime) -> tuple[DataFrame, dict[str, Any], pa.Table | None]:
    """Canonical events, a description of the input, and item metadata (sample only)."""
    if input_path is None:
        params = dict(vars(cfg.sample))
        events, items = sample_mod.generate(end=run_end, **params)
        info = {"path": None, "format": "embedded-sample",
                "fingerprint": _sha(params | {"end": str(run_end)})}
        return spark.createDataFrame(events), info, items
    raw = events_mod.read_events(spark, input_path, fmt=cfg.input.format)
    canonical = events_mod.canonical_events(raw, cfg.input)
    return canonical, {"path": input_path, "format": cfg.input.format,
                       "fingerprint": _fingerprint(spark, raw)}, None


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


def train_model(spark: SparkSession, sessions: DataFrame, cfg: Config,
                progress: Progress, *, label: str = "") -> Model:
    """Vocabulary -> corpus -> Word2Vec -> final vocabulary with vectors."""
    with progress.stage(f"{label}vocabulary") as note:
        vocab = vocab_mod.build_vocabulary(sessions, min_count=cfg.vocabulary.min_count,
                                           max_vocab=cfg.vocabulary.max_vocab).persist()
        size = vocab.count()
        note.append(f"{size:,} items with >= {cfg.vocabulary.min_count} occurrences")
        if size < 2:
            raise BadInput(f"vocabulary has {size} item(s) with >= vocabulary.min_count="
                           f"{cfg.vocabulary.min_count} occurrences; need at least 2 (lower "
                           f"vocabulary.min_count or give more data)")
        train_mod.check_capacity(size, cfg.train.vector_size,
                                 driver_bytes=_driver_memory_bytes(spark))
    with progress.stage(f"{label}corpus") as note:
        c, t = cfg.corpus, cfg.train
        per_copy = corpus_mod.expected_tokens(vocab, subsample=c.subsample)
        partitions = train_mod.plan_partitions(
            per_copy, num_partitions=t.num_partitions,
            tokens_per_partition=t.tokens_per_partition,
            cores=spark.sparkContext.defaultParallelism)
        copies, iterations = train_mod.plan_passes(
            per_copy, copies=c.copies,
            iterations=t.iterations, auto_tokens=t.auto_tokens,
            max_auto_passes=t.max_auto_passes, max_auto_copies=c.max_auto_copies)
        sentences = corpus_mod.build_corpus(sessions, vocab, subsample=c.subsample,
                                            copies=copies, mode=c.mode,
                                            min_sentence_length=c.min_sentence_length,
                                            seed=cfg.train.seed)
        if "corpus" in cfg.spark.fail_first_attempt:
            sentences = _with_fault(sentences, "corpus")
        sentences = sentences.persist(StorageLevel.MEMORY_AND_DISK)
        stats = sentences.agg(F.count(F.lit(1)).alias("n"),
                              F.sum(F.size(corpus_mod.SENTENCE)).alias("t")).first()
        note.append(f"{stats['n']:,} sentences, {stats['t'] or 0:,} tokens "
                    f"({copies} copies, subsample {c.subsample:g}, {c.mode})")
        if not stats["n"]:
            raise BadInput("no training sentences left after subsampling; lower "
                           "corpus.min_sentence_length or raise corpus.subsample")
    with progress.stage(f"{label}train") as note:
        vectors = train_mod.train_vectors(sentences, vector_size=t.vector_size, window=t.window,
                                          iterations=iterations, step_size=t.step_size,
                                          num_partitions=partitions, seed=t.seed,
                                          max_sentence_length=t.max_sentence_length)
        matrix, present = train_mod.to_matrix(vectors, size)
        sentences.unpersist()
        note.append(f"{int(present.sum()):,} vectors of dim {t.vector_size}, "
                    f"{iterations} iteration(s) over {copies} copies, {partitions} partition(s)")
    joined = vocab.join(vectors, vocab_mod.INDEX)
    dropped = int(size - present.sum())
    if dropped:  # re-number so that indexes stay dense 0..V-1 in the same order
        joined = vocab_mod.assign_indexes(joined.drop(vocab_mod.INDEX)).join(
            joined.select(events_mod.ITEM, train_mod.VECTOR), events_mod.ITEM)
        matrix = matrix[present]
    item_vectors = joined.select(events_mod.ITEM, vocab_mod.INDEX, vocab_mod.FREQUENCY,
                                 train_mod.VECTOR).persist()
    final_vocab = item_vectors.select(events_mod.ITEM, vocab_mod.INDEX, vocab_mod.FREQUENCY)
    vocab.unpersist()
    return Model(final_vocab, item_vectors, matrix, dropped, copies, iterations, partitions)


def similarity_info(cfg: Config, items: int | None = None) -> dict[str, Any]:
    """The manifest's similarity block: how similar_items was computed (``items``: the
    vocabulary size, once known, for the parameters that depend on it)."""
    search = cfg.similar.search
    info: dict[str, Any] = {"mode": "embedding", "metric": "cosine", "k": cfg.similar.k,
                            "search": search}
    params = ann.params_for(search, cfg.similar)
    if params is not None:
        info[search] = ann.describe(params, items)
    return info


def similar_items(spark: SparkSession, model: Model, cfg: Config) -> DataFrame:
    pairs = similar_mod.top_k_similar(spark, model.matrix, k=cfg.similar.k,
                                      block_bytes=cfg.similar.block_bytes,
                                      partitions=cfg.similar.partitions,
                                      inject_fault="similar" in cfg.spark.fail_first_attempt,
                                      search=cfg.similar.search,
                                      params=ann.params_for(cfg.similar.search, cfg.similar))
    return similar_mod.with_item_ids(pairs, model.vocab)


def run(spark: SparkSession, cfg: Config, *, input_path: str | None, output: str,
        run_date: dt.date, progress: Progress | None = None,
        items_path: str | None = None) -> RunResult:
    """Run every stage and publish. Raises Item2VecError subclasses for the exit codes."""
    progress = progress or Progress()
    started = _now()
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    run_end = run_end_of(run_date)
    publisher = Publisher(Storage(spark, output), run_date, run_id)
    publisher.check_output()
    publisher.lock()
    try:
        leftovers = publisher.clean_leftovers()
        if leftovers:
            progress.say(f"removed leftovers of interrupted runs: {', '.join(leftovers)}")
        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "run_date": run_date.isoformat(),
            "run_id": run_id, "status": "running", "started_at": started,
            "finished_at": None, "config": cfg.to_dict(), "counts": {}, "timings_s": {},
            "spark_version": spark.version, "versions": _versions(),
            "similarity": similarity_info(cfg),
        }
        counts = manifest["counts"]
        with progress.stage("read") as note:
            events, manifest["input"], items = load_input(spark, cfg, input_path, run_end)
            tagged = events_mod.tag_rejections(events, run_end=run_end,
                                               lookback_days=cfg.input.lookback_days,
                                               event_types=cfg.input.event_types)
            read, rejected = events_mod.count_rejections(tagged)
            counts.update(events_read=read, events_rejected=rejected,
                          events_accepted=read - sum(rejected.values()))
            note.append(f"{read:,} events, {sum(rejected.values()):,} rejected {rejected or ''}")
            events_mod.check_usable(read, rejected, time_unit=cfg.input.time_unit)
        with progress.stage("sessions") as note:
            sessions = sessions_from_events(events_mod.accepted(tagged), cfg).persist(
                StorageLevel.MEMORY_AND_DISK)
            n_sessions, n_tokens = sessions_mod.session_stats(sessions)
            counts.update(sessions=n_sessions, tokens=n_tokens)
            note.append(f"{n_sessions:,} sessions, {n_tokens:,} items in them")
            if not n_sessions:
                raise BadInput(f"no sessions with >= session.min_length={cfg.session.min_length} "
                               f"distinct consecutive items among {counts['events_accepted']:,} "
                               f"usable events")
        model = train_model(spark, sessions, cfg, progress)
        vocab_size = int(model.matrix.shape[0])
        counts.update(vocabulary_size=vocab_size, items_without_vector=model.dropped)
        manifest["similarity"] = similarity_info(cfg, vocab_size)
        manifest["training"] = {"copies": model.copies, "iterations": model.iterations,
                                "num_partitions": model.partitions, "seed": cfg.train.seed}
        with progress.stage("similar") as note:
            similar = similar_items(spark, model, cfg)
            model.vocab.write.mode("overwrite").parquet(publisher.dataset_uri("vocabulary"))
            model.item_vectors.write.mode("overwrite").parquet(
                publisher.dataset_uri("item_vectors"))
            similar.write.mode("overwrite").parquet(publisher.dataset_uri("similar_items"))
            counts["similar_rows"] = vocab_size * min(cfg.similar.k, vocab_size - 1)
            note.append(f"{counts['similar_rows']:,} rows (k={cfg.similar.k}) written")
        neighbours = _example_neighbours(spark, publisher, model)
        if cfg.evaluate.enabled:
            from item2vec import evaluate as evaluate_mod

            with progress.stage("evaluate") as note:
                manifest["metrics"] = evaluate_mod.evaluate(spark, sessions, cfg, progress)
                note.append(evaluate_mod.summary_line(manifest["metrics"]))
                publisher.store.write_text(f"{publisher.staging}/metrics.json",
                                           json.dumps(manifest["metrics"], indent=2) + "\n")
        sessions.unpersist()
        model.item_vectors.unpersist()
        manifest["timings_s"] = dict(progress.timings)
        gate_problem = _gate(manifest.get("metrics"), cfg)
        if gate_problem:
            kept = publisher.reject(manifest)
            raise QualityGateFailed(f"quality gate failed: {gate_problem}; run kept in {kept}")
        with progress.stage("publish") as note:
            add_report = None
            if cfg.report.enabled:
                add_report = _report_writer(publisher, cfg, items_path or items, progress)
            final = publisher.publish(manifest, before_commit=add_report)
            pruned = publisher.prune(cfg.output.retention_days)
            note.append(f"{final}" + (f"; pruned {', '.join(pruned)}" if pruned else ""))
        return RunResult(final, manifest, True, neighbours)
    finally:
        publisher.unlock()


def _report_writer(publisher: Publisher, cfg: Config, items: Any,
                   progress: Progress) -> Any:
    """A before_commit hook drawing the report into the staged run (local outputs only)."""
    if not publisher.store.local:
        progress.say("report skipped: it is written for local outputs only (use jobs/report.py)")
        return None

    def write(run_dir: str) -> None:
        try:  # the report extra is optional: its imports fail at import or at drawing time
            from item2vec.report import build_report

            paths = build_report(run_dir, items=items, top_n=cfg.report.top_n,
                                 seed=cfg.train.seed,
                                 shown_path=publisher.store.join(publisher.partition))
        except ImportError as exc:
            progress.say(f"report skipped: {exc}")
            return
        progress.say(f"report: {paths['html'].replace(run_dir, publisher.partition)}")

    return write


def _gate(metrics: dict[str, Any] | None, cfg: Config) -> str | None:
    """None when the run may be published, else why not."""
    if not metrics or "models" not in metrics:
        return None
    models = metrics["models"]
    hr = models.get("item2vec", {}).get("hr@10")
    if hr is None:
        return None
    pop = models.get("popularity", {}).get("hr@10", 0.0)
    lift = cfg.gate.min_lift_over_popularity
    if lift and hr < lift * pop:
        return f"item2vec HR@10 {hr:.4f} < {lift} x popularity HR@10 {pop:.4f}"
    if cfg.gate.min_hr and hr < cfg.gate.min_hr:
        return f"item2vec HR@10 {hr:.4f} < gate.min_hr {cfg.gate.min_hr}"
    return None


def _example_neighbours(spark: SparkSession, publisher: Publisher,
                        model: Model, n_items: int = 3, k: int = 5) -> dict[str, list]:
    """Top-k of the most frequent items, for the closing summary (read back from staging)."""
    top = spark.read.parquet(publisher.dataset_uri("similar_items"))
    frequent = model.vocab.where(F.col(vocab_mod.INDEX) < n_items).select(events_mod.ITEM)
    rows = (top.join(F.broadcast(frequent), events_mod.ITEM).where(F.col("rank") <= k)
            .orderBy(events_mod.ITEM, "rank").collect())
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(str(r["item_id"]), []).append((r["similar_item_id"], float(r["score"])))
    return out


def _with_fault(df: DataFrame, stage: str) -> DataFrame:
    """Pass rows through a Python task that fails on its first attempt (retry tests)."""
    def passthrough(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fail_first_attempt(stage)
        yield from batches

    return df.mapInArrow(passthrough, df.schema)


def _driver_memory_bytes(spark: SparkSession) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory())
    except Exception:  # no JVM access (e.g. Spark Connect): skip the estimate
        return None


def _fingerprint(spark: SparkSession, raw: DataFrame) -> str:
    """Hash of the input files' names, sizes and modification times (cheap, no data read)."""
    files = sorted(raw.inputFiles())
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    entries = []
    for name in files:
        path = jvm.org.apache.hadoop.fs.Path(name)
        status = path.getFileSystem(conf).getFileStatus(path)
        entries.append([name, status.getLen(), status.getModificationTime()])
    return _sha(entries)


def _sha(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True,
                                                 default=str).encode()).hexdigest()


def _versions() -> dict[str, str]:
    return {"item2vec": item2vec.__version__, "python": platform.python_version(),
            "pyspark": pyspark.__version__, "numpy": np.__version__, "pyarrow": pa.__version__}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def summary(result: RunResult) -> str:
    """The closing summary printed by the job: counts, where outputs are, example neighbours."""
    m = result.manifest
    c = m["counts"]
    rejected = sum(c.get("events_rejected", {}).values())
    lines = [
        f"item2vec run {m['run_date']} {'published' if result.published else 'NOT published'}",
        f"  events read {c.get('events_read', 0):,}  rejected {rejected:,}  "
        f"sessions {c.get('sessions', 0):,}  tokens {c.get('tokens', 0):,}",
        f"  vocabulary {c.get('vocabulary_size', 0):,} items  similar rows "
        f"{c.get('similar_rows', 0):,}",
        f"  outputs: {result.output_dir}",
        "  stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in m["timings_s"].items()),
    ]
    if m.get("metrics", {}).get("models"):
        from item2vec.evaluate import metrics_table

        lines.append("  holdout metrics:")
        lines += ["    " + row for row in metrics_table(m["metrics"]).splitlines()]
    for item, neighbours in result.neighbours.items():
        shown = ", ".join(f"{n} ({s:.2f})" for n, s in neighbours)
        lines.append(f"  neighbours of {item}: {shown}")
    return "\n".join(lines)
