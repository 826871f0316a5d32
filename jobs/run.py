"""The nightly item2vec job: events -> sessions -> vectors -> similar items, published atomically.

Examples:
  ./spark-submit.sh --output out/                       # embedded sample
  ./spark-submit.sh --input events/ --output out/ --run-date 2026-11-26 \\
      --set train.vector_size=64 --set input.event_types='["view","purchase"]'
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # repo root, when run from a checkout

from item2vec import ann, cli, config, pipeline
from item2vec.progress import Progress
from item2vec.sparkenv import job_session

PROG = "item2vec"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the job, return the exit status (0, 1, 2 or 3; see CONTRACT.md)."""
    parser = cli.job_parser(PROG, __doc__)
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="output root: dt=YYYY-MM-DD/ partitions and LATEST go here")
    parser.add_argument("--items", metavar="PATH",
                        help="item metadata (item_id plus title/category) for the report")

    def body() -> int:
        args = parser.parse_args(argv)
        cfg = config.load(args.config, args.overrides)
        ann.require(cfg.similar.search)  # before Spark starts
        with job_session(PROG, log_level=cfg.spark.log_level, master=args.master,
                         shuffle_partitions=cfg.spark.shuffle_partitions) as spark:
            result = pipeline.run(spark, cfg, input_path=args.input, output=args.output,
                                  run_date=args.run_date, progress=Progress(prefix=PROG),
                                  items_path=args.items)
            print(pipeline.summary(result), flush=True)
            return 0

    return cli.guarded(body, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
