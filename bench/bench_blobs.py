"""No driver-side blobs: a 1M x 64 model's item vectors and embedding search, driver log checked.

    .venv/bin/python -m bench.bench_blobs              # 1M x 64, 10k queries, + job on 1M events
    .venv/bin/python -m bench.bench_blobs --items 1000000 --queries 20000 --job-events 0

Spark warns on the driver when a task carries data: "Stage N contains a task of very large size
(... KiB)" (TaskSetManager: the serialised task, e.g. rows of a local relation, is over
1000 KiB) and "Broadcasting large task binary with size ..." (DAGScheduler: the stage's
closure, e.g. a numpy array captured by a Python function, is over 1000 KiB). The job must
never do either: vectors and lookup arrays travel as broadcasts, rows are made by tasks.

Each check runs in a child process whose whole output (the Python driver's and the JVM's
stderr, with conf/log4j2.properties at WARN) goes to a log file that is then searched:

1. control: a 2M-element list parallelized from the driver and a filter with 100k literals,
   which must produce both warnings, so the search is known to see them (a large Python
   closure would not do: PySpark broadcasts commands over 1 MB by itself);
2. model: a ``V x dim`` float32 matrix of clustered vectors on the driver (where the trained
   matrix lives in the job) and a vocabulary DataFrame of V string ids made by Spark
   (``spark.range``), wrapped in ``train.Model``; ``train.item_vectors(model)`` written as
   Parquet, then the ranking stage (``rank.rank_items`` with ``similar.Searcher``, the
   configured mode and candidates, exact search) for ``--queries`` evenly spaced items written
   as Parquet; times, row counts and a vector round-trip check are reported;
3. train (unless ``--skip-train``): MLlib Word2Vec on a corpus whose vocabulary is V tokens,
   then the vectors taken out of the model the job's way (``train.train_vectors``,
   ``train.to_matrix``): MLlib's ``getVectors()`` is a local relation that Spark ships inside
   the tasks, which is why the job reads the vectors through ``transform`` instead;
4. job (``--job-events N``): the plain job through ./spark-submit.sh on an N-event log
   (bench/datagen.py), default settings.

Peak RSS is summed over each child's process tree (bench/jobrun.py). The control must warn
and the model and train children must not; the job's warnings are reported. Results:
bench/results/blobs.json and bench/results/blobs_*.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import datagen, jobrun

RESULT = "BENCH_RESULT "  # prefix of the child's one result line


# -- children ---------------------------------------------------------------------------------
def _session(master: str) -> Any:
    from item2vec.sparkenv import get_spark

    spark, _ = get_spark("bench-blobs", log_level="WARN", master=master, shuffle_partitions=0)
    return spark


def child_control(a: argparse.Namespace) -> dict[str, Any]:
    """Both warnings on purpose: rows parallelized from the driver (they travel inside the
    tasks) and a filter holding 100k literals (it travels inside the stage's task binary)."""
    from pyspark.sql import functions as F

    spark = _session(a.master)
    shipped = spark.sparkContext.parallelize(list(range(2_000_000)), 2).count()
    literals = spark.range(1000).where(F.col("id").isin(list(range(100_000)))).count()
    spark.stop()
    return {"shipped_count": shipped, "literals_count": literals}


def clustered(n: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """n vectors around n/100 Gaussian centres (float32), built in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 1 << 18):
        stop = min(n, start + (1 << 18))
        labels = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[labels] + rng.standard_normal((stop - start, dim),
                                                                dtype=np.float32)
    return out


def child_train(a: argparse.Namespace) -> dict[str, Any]:
    """MLlib Word2Vec on a corpus whose vocabulary is ``--items`` tokens (each seen 3 times,
    in 10-token sentences made by tasks), one iteration, then the vectors leave the model the
    job's way (train.train_vectors + to_matrix): the step that used to ship them inside tasks."""
    from pyspark.sql import functions as F

    from item2vec import train

    spark = _session(a.master)
    v, per = a.items, 10
    tokens = spark.range(0, 3 * v, 1, numPartitions=4).select(
        (F.col("id") / per).cast("long").alias("s"),
        ((F.col("id") * 7919) % v).cast("string").alias("t"))
    corpus = tokens.groupBy("s").agg(F.collect_list("t").alias(train.SENTENCE)).select(
        train.SENTENCE).persist()
    res: dict[str, Any] = {"items": v, "dim": a.dim, "sentences": corpus.count()}
    t0 = time.perf_counter()
    vectors = train.train_vectors(corpus, vocab_size=v, vector_size=a.dim, window=2,
                                  iterations=1, step_size=0.025, num_partitions=1, seed=1,
                                  max_sentence_length=1000)
    matrix, present = train.to_matrix(vectors, v)
    res |= {"train_and_vectors_s": round(time.perf_counter() - t0, 1),
            "vectors": int(present.sum()), "matrix_mb": round(matrix.nbytes / 2**20, 1)}
    spark.stop()
    return res


def child_model(a: argparse.Namespace) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from item2vec import config, rank, train
    from item2vec import cooccurrence as co
    from item2vec.events import ITEM
    from item2vec.similar import Searcher
    from item2vec.vocabulary import FREQUENCY, INDEX

    spark = _session(a.master)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    v, dim = a.items, a.dim
    res: dict[str, Any] = {"items": v, "dim": dim}
    t0 = time.perf_counter()
    matrix = clustered(v, dim, seed=a.seed)
    res["matrix_s"] = round(time.perf_counter() - t0, 1)
    res["matrix_mb"] = round(matrix.nbytes / 2**20, 1)
    # The vocabulary as the job has it: a DataFrame computed by tasks, never a local relation.
    width = len(str(v - 1))
    vocab = spark.range(0, v, 1, numPartitions=spark.sparkContext.defaultParallelism).select(
        F.format_string(f"i%0{width}d", F.col("id")).alias(ITEM),
        F.col("id").cast("int").alias(INDEX), (F.lit(v) - F.col("id")).cast("long")
        .alias(FREQUENCY)).persist()
    vocab.count()
    model = train.Model(vocab, matrix, np.arange(v, dtype=np.int32), 0, 1, 1, 1)

    t0 = time.perf_counter()
    train.item_vectors(model).write.parquet(str(out / "item_vectors"))
    res["item_vectors_s"] = round(time.perf_counter() - t0, 1)
    written = spark.read.parquet(str(out / "item_vectors"))
    res["item_vectors_rows"] = written.count()
    probe = [0, v // 2, v - 1]
    back = {r[INDEX]: np.array(r[train.VECTOR], dtype=np.float32)
            for r in written.where(F.col(INDEX).isin(probe)).collect()}
    res["item_vectors_roundtrip_ok"] = all(np.array_equal(back[i], matrix[i]) for i in probe)

    cfg = config.load()
    s, e = cfg.similar, cfg.evaluate
    t0 = time.perf_counter()
    searcher = Searcher(spark, matrix, k=s.candidates, block_bytes=s.block_bytes,
                        search="exact")
    keys = np.arange(v, dtype=np.int32)
    lookups = spark.sparkContext.broadcast(rank.Lookups(
        keys, keys, keys, (v - np.arange(v)).astype(np.int64)))
    res["search_setup_s"] = round(time.perf_counter() - t0, 1)
    # No co-occurrence evidence (no sessions; the query items listed anyway): the search alone.
    step = max(1, v // a.queries)
    queries = spark.range(0, v, step).select(F.col("id").cast("int").alias(ITEM))
    evidence = co.evidence(spark.createDataFrame([], "keys array<int>"), queries,
                           windows=co.Windows(1, 1, 1, 1), span=v,
                           buckets=spark.sparkContext.defaultParallelism)
    params = rank.Params(k=s.k, candidates=s.candidates, partners=s.partners,
                         weights=rank.Weights(*s.weights, decay=s.forward_decay), mode=s.mode,
                         references=e.enabled, ref_k=max(e.ks), cooc_alpha=e.cooc_alpha,
                         cooc_lambda=e.cooc_lambda)  # as pipeline.model_step builds them
    t0 = time.perf_counter()
    rank.rank_items(evidence, searcher=searcher, lookups=lookups,
                    params=params).write.parquet(str(out / "ranked"))
    res["rank_s"] = round(time.perf_counter() - t0, 1)
    ranked = rank.flat_lists(spark.read.parquet(str(out / "ranked")))
    res["queries"] = -(-v // step)
    res["ranked_rows_published"] = ranked.where(F.col(rank.MODEL) == 0).count()
    res["ranked_rows_expected"] = res["queries"] * min(s.k, v - 1)
    res |= {"mode": s.mode, "k": s.k, "candidates": s.candidates,
            "block_bytes": s.block_bytes, "search": "exact"}
    searcher.release()
    lookups.unpersist()
    model.release()
    spark.stop()
    return res


# -- parent -----------------------------------------------------------------------------------
def run_child(kind: str, a: argparse.Namespace) -> dict[str, Any]:
    log = jobrun.RESULTS / f"blobs_{kind}{a.tag}.log"
    cmd = [sys.executable, "-m", "bench.bench_blobs", "--child", kind, "--items", str(a.items),
           "--dim", str(a.dim), "--queries", str(a.queries), "--master", a.master,
           "--out", str(jobrun.OUT / f"blobs{a.tag}"), "--seed", str(a.seed)]
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS=f"--driver-memory {a.driver_memory} pyspark-shell")
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    res = jobrun.run_logged(cmd, log=log, env=env)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith(RESULT)]
    res["result"] = json.loads(lines[-1][len(RESULT):]) if lines else None
    print(f"  -> rc={res['rc']} wall {res['wall_s']}s peak RSS {res['peak_rss_gb']} GB "
          f"warnings {res['warnings']} {res['result']}", file=sys.stderr, flush=True)
    return res


def run_job(a: argparse.Namespace) -> dict[str, Any]:
    data = datagen.dataset(a.job_events, 100_000)
    out = jobrun.OUT / f"blobs{a.tag}_job"
    shutil.rmtree(out, ignore_errors=True)
    res = jobrun.submit(["--input", str(data / "events"), "--output", str(out),
                         "--run-date", datagen.RUN_DATE],
                        log=jobrun.RESULTS / f"blobs_job{a.tag}.log",
                        driver_memory=a.driver_memory)
    manifest, where = jobrun.run_manifest(out, rc=res["rc"])
    res = jobrun.summarize(res | {"run": where, "events": datagen.counts(data)["events"]},
                           manifest)
    res["warning_lines"] = [ln for ln in (jobrun.ROOT / res["log"]).read_text(
        errors="replace").splitlines() if any(w in ln for w in jobrun.BLOB_WARNINGS)]
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=10_000, help="items ranked (evenly spaced)")
    p.add_argument("--job-events", type=int, default=1_000_000, help="0: skip the job run")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--skip-train", action="store_true", help="no MLlib run at --items")
    p.add_argument("--child", choices=["control", "model", "train"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        res = {"control": child_control, "model": child_model,
               "train": child_train}[a.child](a)
        print(RESULT + json.dumps(res), flush=True)
        return res
    jobrun.RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": jobrun.machine()}
    result["control"] = run_child("control", a)
    result["model"] = run_child("model", a)
    if not a.skip_train:
        result["train"] = run_child("train", a)
    if a.job_events:
        result["job"] = run_job(a)
    control_seen = all(result["control"]["warnings"].values())
    model_clean = not any(w for name in ("model", "train") if name in result
                          for w in result[name]["warnings"].values())
    r = result["model"]["result"] or {}
    result["verdict"] = {
        "control_warnings_seen": control_seen,
        "model_no_warnings": model_clean,
        "model_outputs_ok": bool(r) and r["item_vectors_rows"] == r["items"]
        and r["item_vectors_roundtrip_ok"]
        and r["ranked_rows_published"] == r["ranked_rows_expected"]
        and ("train" not in result or (result["train"]["result"] or {}).get("vectors") == a.items),
        "job_warnings": result.get("job", {}).get("warnings"),
    }
    (jobrun.RESULTS / f"blobs{a.tag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["verdict"], indent=1))
    if not (control_seen and model_clean and result["verdict"]["model_outputs_ok"]):
        raise SystemExit("blob check failed: see bench/results/blobs*.json")
    return result


if __name__ == "__main__":
    main()
