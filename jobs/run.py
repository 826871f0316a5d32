"""The nightly item2vec job: events -> sessions -> vectors -> similar items, published atomically.

Examples:
  ./spark-submit.sh --output out/                       # embedded sample
  ./spark-submit.sh --input events/ --output out/ --run-date 2026-11-26 \\
      --set train.vector_size=64 --set input.event_types='["view","purchase"]'
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid

from item2vec import ann, cli, config, pipeline
from item2vec.progress import Progress
from item2vec.publish import Publisher
from item2vec.sparkenv import job_session
from item2vec.storage import Storage
from item2vec.train import Wrap, no_wrap

PROG = "item2vec"


def main(argv: list[str] | None = None, *, wrap: Wrap = no_wrap) -> int:
    """Parse arguments, run the job, return the exit status (0, 1, 2 or 3; see CONTRACT.md).

    ``wrap`` is the test seam around stage outputs (see item2vec.train.Wrap)."""
    parser = cli.job_parser(PROG, __doc__)
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="output root: dt=YYYY-MM-DD/ partitions and LATEST go here")
    parser.add_argument("--items", metavar="PATH",
                        help="item metadata (item_id plus title/category) for the report")

    def body() -> int:
        args = parser.parse_args(argv)
        cfg = config.load(args.config, args.overrides)
        ann.require(cfg.similar.search)  # before Spark starts
        progress = Progress(prefix=PROG)
        with job_session(PROG, log_level=cfg.spark.log_level, master=args.master,
                         shuffle_partitions=cfg.spark.shuffle_partitions) as spark:
            pub = Publisher(Storage(spark, args.output), run_date=args.run_date,
                            run_id=new_run_id(), lease_minutes=cfg.output.lock_lease_minutes,
                            notice=progress.say)
            pub.check_output()
            with pub:
                leftovers = pub.clean_leftovers()
                if leftovers:
                    progress.say(f"removed leftovers of interrupted runs: {', '.join(leftovers)}")
                result = pipeline.run(spark, cfg, pub, input_path=args.input,
                                      run_date=args.run_date, progress=progress,
                                      wrap=wrap, items_path=args.items)
            print(pipeline.summary(result, output=args.output), flush=True)
            return 0

    return cli.guarded(body, prog=PROG)


def new_run_id() -> str:
    """Sortable and unique: UTC start time plus a random suffix."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


if __name__ == "__main__":
    sys.exit(main())
