"""Build the optional run report (map, HTML page, TensorBoard projector files) for one run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `python jobs/report.py`

import argparse

from item2vec.reader import check_run_dir, latest_partition
from item2vec.report import build_report, load_items

EPILOG = """examples:
  # report of the run LATEST points at, written to out/dt=…/report/
  python jobs/report.py --output out/

  # a specific run, with item titles/categories, written elsewhere
  python jobs/report.py --run-dir out/dt=2026-11-26 --items items.parquet --out /tmp/report

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
    where.add_argument("--output", metavar="OUT", help="published output root (follows LATEST)")
    where.add_argument("--run-dir", metavar="DIR", help="one run directory, e.g. OUT/dt=2026-11-26")
    parser.add_argument("--items", metavar="PATH", help="item metadata, Parquet or CSV")
    parser.add_argument("--item-col", default="item_id", help="id column of --items (item_id)")
    parser.add_argument("--out", metavar="DIR", help="report directory (default: RUN_DIR/report)")
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
        run_dir = latest_partition(args.output) if args.output else str(check_run_dir(args.run_dir))
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

    print(f"report for {run_dir}")
    for name in ("html", "map", "projector"):
        print(f"  {name:<10} {Path(paths[name]).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
