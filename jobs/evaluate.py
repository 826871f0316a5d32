"""Evaluate the configured lists against the baselines on a holdout, publish nothing.

The same holdout as the nightly job's: the latest evaluate.test_fraction of sessions is the
test set, the lists are built from the rest, and each next item of a test session is predicted
from the previous one by the published list, the embedding alone, item co-occurrence,
sequential rules and popularity. Prints the metrics table and, with --output, writes
metrics.json there.

Examples:
  ITEM2VEC_JOB=jobs/evaluate.py ./spark-submit.sh --input events/ --run-date 2026-11-26
  ITEM2VEC_JOB=jobs/evaluate.py ./spark-submit.sh --input events/ --output eval/ \\
      --set train.window=10 --set evaluate.test_fraction=0.1
"""

from __future__ import annotations

import json
import sys

from item2vec import cli, config, evaluate, pipeline
from item2vec.progress import Progress
from item2vec.sparkenv import job_session
from item2vec.storage import Storage

PROG = "item2vec-evaluate"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, evaluate, return 0 (or 1/2 like the job)."""
    parser = cli.job_parser(PROG, __doc__)
    parser.add_argument("--output", metavar="PATH", help="directory for metrics.json (optional)")

    def body() -> int:
        args = parser.parse_args(argv)
        cfg = config.load(args.config, args.overrides)
        progress = Progress(prefix=PROG)
        with job_session(PROG, log_level=cfg.spark.log_level, master=args.master,
                         shuffle_partitions=cfg.spark.shuffle_partitions) as spark:
            sessions = pipeline.input_sessions(spark, cfg, args.input, args.run_date).persist()
            metrics = pipeline.evaluate_step(sessions, cfg, "holdout", None, progress)
            print(evaluate.metrics_table(metrics))
            if args.output:
                store = Storage(spark, args.output)
                store.mkdirs(store.root)
                path = store.join("metrics.json")
                store.write_text(path, json.dumps(
                    {"run_date": args.run_date.isoformat(), "config": cfg.to_dict(),
                     "metrics": metrics}, indent=2, default=str) + "\n")
                print(f"metrics: {path}")
            return 0

    return cli.guarded(body, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
