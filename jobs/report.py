"""Build the optional run report (map, HTML page, TensorBoard projector files) for one run."""

import argparse
import sys
from pathlib import Path

from item2vec.reader import check_run_dir, is_local_location, latest_run
from item2vec.report import build_report, load_items

EPILOG = """examples:
  # report of the run LATEST points at, written into that run (out/dt=…/run=…/report/)
  python jobs/report.py --output out/

  # a specific run, with item titles/categories, written elsewhere
  python jobs/report.py --run-dir out/dt=2026-11-26/run=20261127T020000-1a2b3c4d \\
      --items items.parquet --out /tmp/report

  # an output on S3 (any pyarrow/fsspec URI works: s3://, gs://, hdfs://, file://);
  # the report is drawn locally and uploaded into the run
  python jobs/report.py --output s3://bucket/item2vec/

  # CSV metadata whose id column is called sku
  python jobs/report.py --output out/ --items items.csv --item-col sku --top-n 5000

needs the report extra: pip install '.[report]'
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobs/report.py",
        description="Write map.png, report.html and projector/ for a published item2vec run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", metavar="OUT",
                       help="published output root, local path or URI (follows LATEST)")
    where.add_argument("--run-dir", metavar="DIR",
                       help="one complete run, e.g. OUT/dt=2026-11-26/run=<run_id>")
    parser.add_argument("--items", metavar="PATH", help="item metadata, Parquet or CSV")
    parser.add_argument("--item-col", default="item_id", help="id column of --items (item_id)")
    parser.add_argument("--out", metavar="DIR",
                        help="report directory, local path or URI (default: RUN_DIR/report)")
    parser.add_argument("--top-n", type=int, default=2000, help="items on the map (2000)")
    parser.add_argument("--labelled", type=int, default=6, help="items named on the map (6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 2-D layout (0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 written, 2 bad input (missing run, items or column), 1 otherwise."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return instead of exiting
        return int(exc.code or 0)

    try:
        run_dir = latest_run(args.output) if args.output else check_run_dir(args.run_dir)
        # ids are cast to the run's item_id type when joined (CSV ids are read as strings)
        items = load_items(args.items, item_col=args.item_col) if args.items else None
        paths = build_report(
            run_dir,
            items=items,
            out_dir=args.out,
            top_n=args.top_n,
            labelled=args.labelled,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the store failed: permission denied, bucket missing, network
        print(f"report: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    print(f"report for {run_dir}")
    for name in ("html", "map", "projector"):
        shown = Path(paths[name]).resolve() if is_local_location(paths[name]) else paths[name]
        print(f"  {name:<10} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
