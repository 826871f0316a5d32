"""Sweep the main knobs, choose on a validation split, report the choice on a test split.

Examples (spark-submit.sh runs this job instead of the nightly one with ITEM2VEC_JOB):
  ITEM2VEC_JOB=jobs/tune.py ./spark-submit.sh --input events/ --output tune-out/ \\
      --grid train.window=5,10 --grid similar.window=2,3,5 --grid vocabulary.min_count=2,5
  ITEM2VEC_JOB=jobs/tune.py ./spark-submit.sh --output tune-out/ --random 12 --seed 1 \\
      --grid train.window=3,5,10,20 --grid train.vector_size=16,32,64

No leakage: the latest evaluate.test_fraction of sessions is the test split and is used once,
at the end. Every variant is built from the earlier sessions minus their own latest
evaluate.test_fraction, and scored on that validation slice; the variant with the best
validation NDCG@10 of its published list is then built from all earlier sessions and scored on
the test split, beside the embedding alone, item co-occurrence, sequential rules and
popularity, all on the same test pairs. MLlib's own defaults (embedding only) run as a
reference variant. The table is written as Parquet to ``<output>/tune-<run date>.parquet``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import sys
import time

from pyspark.sql import DataFrame, SparkSession

from item2vec import cli, config, evaluate, pipeline
from item2vec.errors import BadInput
from item2vec.progress import Progress
from item2vec.sparkenv import job_session

PROG = "item2vec-tune"
# What MLlib gives without tuning: dim 100, window 5, 1 iteration, min count 5, no subsampling,
# cosine lists only.
MLLIB_DEFAULTS = ("train.vector_size=100", "train.window=5", "train.iterations=1",
                  "train.step_size=0.025", "vocabulary.min_count=5", "corpus.subsample=0",
                  "corpus.copies=1", "corpus.mode=\"sequence\"", "train.num_partitions=1",
                  "similar.mode=\"embedding\"")


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``section.key=v1,v2`` (repeatable) -> {key: [v1, v2]}; values stay TOML literals."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or "." not in key or not values:
            raise BadInput(f"--grid {item!r}: expected section.key=v1,v2,...")
        grid[key.strip()] = [v.strip() for v in _split_values(values)]
    return grid


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes (so lists like ["a","b"] survive)."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return out


def variants(grid: dict[str, list[str]], *, n_random: int, seed: int) -> list[tuple[str, ...]]:
    """Grid points as override lists (empty grid: none; the defaults always run)."""
    if not grid:
        return []
    keys = sorted(grid)
    combos = [tuple(f"{k}={v}" for k, v in zip(keys, vals, strict=True))
              for vals in itertools.product(*(grid[k] for k in keys))]
    if n_random and n_random < len(combos):
        combos = random.Random(seed).sample(combos, n_random)
    return combos


def main(argv: list[str] | None = None) -> int:
    parser = cli.job_parser(PROG, __doc__)
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="directory for tune-<run date>.parquet")
    parser.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                        help="values to try for one key (repeatable; the grid is their product)")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="try N random grid points instead of all")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the MLlib-defaults reference variant")

    def body() -> int:
        args = parser.parse_args(argv)
        base = config.load(args.config, args.overrides)
        grid = parse_grid(args.grid)
        points = variants(grid, n_random=args.random, seed=args.seed)
        for point in points:  # validate every variant before any Spark work
            config.load(args.config, [*args.overrides, *point])
        with job_session(PROG, log_level=base.spark.log_level, master=args.master,
                         shuffle_partitions=base.spark.shuffle_partitions) as spark:
            rows = sweep(spark, base, args, points, Progress(prefix=PROG))
            print(format_table(rows))
            out = write_table(spark, rows, args.output, args.run_date)
            print(f"results: {out}")
            return 0

    return cli.guarded(body, prog=PROG)


def sweep(spark: SparkSession, base: config.Config, args: argparse.Namespace,
          points: list[tuple[str, ...]], progress: Progress) -> list[dict]:
    """Rows of the results table: every variant on the validation split, then the chosen one
    and the reference models on the test split."""
    sessions = pipeline.input_sessions(spark, base, args.input, args.run_date).persist()
    e = base.evaluate
    ks = tuple(sorted(set(e.ks)))
    train, _, _ = evaluate.split_by_start(sessions, fraction=e.test_fraction)
    train = train.persist()
    labelled = [("defaults", ())] + [(" ".join(p), p) for p in points]
    if not args.no_reference:
        labelled.append(("mllib-defaults", MLLIB_DEFAULTS))
    rows: list[dict] = []
    best: tuple[float, str, config.Config] | None = None
    for label, point in labelled:
        cfg = config.load(args.config, [*args.overrides, *point])
        start = time.perf_counter()
        metrics = _holdout(train, cfg, progress, label=f"[{label}] ")
        published = metrics["models"].get("published", {})
        rows.append({"variant": label, "split": "validation", "model": "published",
                     "cutoff": metrics["holdout"]["cutoff"], "pairs": metrics["pairs"],
                     **_flat(published), "seconds": round(time.perf_counter() - start, 2)})
        progress.say(f"{label}: validation NDCG@10 {published.get('ndcg@10', 0.0):.4f}")
        key = published.get(f"ndcg@{min(ks)}", 0.0)
        if best is None or key > best[0]:
            best = (key, label, cfg)
    assert best is not None
    _, label, cfg = best
    start = time.perf_counter()
    final = _holdout(sessions, cfg, progress, label=f"[test {label}] ")
    seconds = round(time.perf_counter() - start, 2)
    for model, m in final["models"].items():
        name = f"{label} (chosen)" if model == "published" else model
        rows.append({"variant": name, "split": "test", "model": model,
                     "cutoff": final["holdout"]["cutoff"], "pairs": final["pairs"], **_flat(m),
                     "seconds": seconds})
    train.unpersist()
    sessions.unpersist()
    return rows


def _holdout(sessions: DataFrame, cfg: config.Config, progress: Progress, *,
             label: str) -> dict:
    """Lists built from the earlier sessions, scored on the latest evaluate.test_fraction."""
    e = cfg.evaluate

    def build(train_sessions: DataFrame, queries: DataFrame) -> evaluate.Lists:
        built = pipeline.model_step(train_sessions, cfg, progress, queries=queries, label=label)
        return built.lists(max(e.ks))

    return evaluate.holdout(sessions, build=build, test_fraction=e.test_fraction,
                            max_test_pairs=e.max_test_pairs, seed=cfg.train.seed,
                            ks=tuple(sorted(set(e.ks))), progress=progress)


def _flat(metrics: dict) -> dict:
    """The headline numbers (per-bucket HR stays in the manifest of a real run)."""
    return {key: float(value) for key, value in metrics.items()
            if not isinstance(value, dict)}


def format_table(rows: list[dict]) -> str:
    """Validation rows best first, then the test rows as scored."""
    cols = ("hr@10", "mrr@10", "ndcg@10", "hr@20", "coverage@20", "seconds")
    width = max([len(r["variant"]) for r in rows] + [7]) + 2
    lines = []
    for split in ("validation", "test"):
        part = [r for r in rows if r.get("split", "validation") == split]
        if split == "validation":
            part.sort(key=lambda r: -r.get("ndcg@10", 0.0))
        if not part:
            continue
        lines.append(f"{split}:".ljust(width) + "".join(c.rjust(12) for c in cols))
        for r in part:
            lines.append(r["variant"].ljust(width)
                         + "".join(f"{r.get(c, float('nan')):12.4f}" for c in cols))
    return "\n".join(lines)


def write_table(spark: SparkSession, rows: list[dict], output: str, run_date: dt.date) -> str:
    from item2vec.storage import Storage

    store = Storage(spark, output)
    store.mkdirs(store.root)
    path = store.join(f"tune-{run_date.isoformat()}.parquet")
    spark.createDataFrame(rows).coalesce(1).write.mode("overwrite").parquet(store.uri(path))
    return path


if __name__ == "__main__":
    sys.exit(main())
