"""Build the optional run report (map, metric trend, HTML page, TensorBoard projector files) for
one run, or only the metric trend of an output."""

import argparse
import sys
from pathlib import Path

import pyarrow.fs as pafs

from item2vec import config
from item2vec.errors import BadInput
from item2vec.reader import (
    check_run_dir,
    is_local_location,
    latest_run,
    read_run_manifest,
    resolve,
)
from item2vec.report import build_report, build_trend, load_items, output_history

EPILOG = """examples:
  # report of the run LATEST points at, written into that run (out/dt=…/run=…/report/):
  # report.html with counts, metrics, the metric trend of the last report.trend_runs run
  # dates and the map, plus trend.png, map.png and projector/
  item2vec-report --output out/

  # a specific run, with item titles/categories, written elsewhere; its trend ends at its date
  item2vec-report --run-dir out/dt=2026-11-26/run=20261127T020000-1a2b3c4d \\
      --items items.parquet --out /tmp/report

  # only the metric trend of an output (no map, nothing written into the output):
  # /tmp/trend/trend.png and /tmp/trend/trend.html, the last 90 run dates
  item2vec-report --output out/ --trend-only --out /tmp/trend --trend-runs 90

  # an output on S3 (any pyarrow/fsspec URI works: s3://, gs://, hdfs://, file://);
  # the report is drawn locally and uploaded into the run
  item2vec-report --output s3://bucket/item2vec/

  # CSV metadata whose id column is called sku
  item2vec-report --output out/ --items items.csv --item-col sku --top-n 5000

The trend plots HR@10 and MRR@10 from the metric history under OUT/_metrics/, one line per
model and evaluation method (previous_run, holdout, and validation: tonight's list on its
validation slice); a red x marks a run that failed the quality gate. With fewer than two runs
the page holds a note instead. --top-n and --trend-runs default to report.top_n and
report.trend_runs of the config (conf/default.toml, or --config FILE.toml).
`python jobs/report.py` takes the same arguments. Needs the report extra: pip install '.[report]'
"""


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="item2vec-report",
        description="Write map.png, trend.png, report.html and projector/ for a published "
                    "item2vec run, or (--trend-only) the metric trend of an output.",
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
                        help="report directory, local path or URI (default: RUN_DIR/report; "
                             "required with --trend-only)")
    parser.add_argument("--trend-only", action="store_true",
                        help="write only trend.png and trend.html (into --out)")
    parser.add_argument("--trend-runs", type=_at_least(2), metavar="N",
                        help="run dates in the trend (report.trend_runs)")
    parser.add_argument("--top-n", type=_at_least(1), metavar="N",
                        help="items on the map (report.top_n)")
    parser.add_argument("--labelled", type=int, default=6, help="items named on the map (6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 2-D layout (0)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="config whose [report] keys give the defaults above")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 written, 2 bad input (missing run, items or column), 1 otherwise."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.trend_only and not args.out:
            parser.error("--trend-only needs --out DIR (where trend.png and trend.html go)")
    except SystemExit as exc:  # --help (0) or a usage error (2): return instead of exiting
        return int(exc.code or 0)

    try:
        report = config.load(args.config).report
        trend_runs = args.trend_runs or report.trend_runs
        if args.trend_only:
            return _trend_only(args, trend_runs)
        run_dir = latest_run(args.output) if args.output else check_run_dir(args.run_dir)
        # ids are cast to the run's item_id type when joined (CSV ids are read as strings)
        items = load_items(args.items, item_col=args.item_col) if args.items else None
        paths = build_report(
            run_dir,
            items=items,
            out_dir=args.out,
            top_n=args.top_n or report.top_n,
            labelled=args.labelled,
            seed=args.seed,
            trend_runs=trend_runs,
        )
    except (BadInput, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the store failed: permission denied, bucket missing, network
        print(f"report: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    print(f"report for {run_dir}")
    _print_paths(paths, ("html", "trend", "map", "projector"))
    if "trend" not in paths:
        print("  trend      not drawn: fewer than two runs with metrics (see report.html)")
    return 0


def _trend_only(args: argparse.Namespace, trend_runs: int) -> int:
    """Draw the trend of ``--output`` (all dates) or of the output ``--run-dir`` belongs to
    (up to that run's date)."""
    if args.output:
        fs, root = resolve(args.output)
        if all(fs.get_file_info(f"{root}/{name}").type == pafs.FileType.NotFound
               for name in ("_metrics", "LATEST")):
            raise FileNotFoundError(f"no _metrics/ and no LATEST in {args.output}: not an "
                                    "item2vec output root, or no run has finished there yet")
        paths = build_trend(args.output, out_dir=args.out, trend_runs=trend_runs)
        shown = args.output
    else:
        run_dir = check_run_dir(args.run_dir)
        run_date = read_run_manifest(run_dir).get("run_date")
        paths = build_trend(run_dir, out_dir=args.out, trend_runs=trend_runs,
                            history=output_history(run_dir),
                            until=str(run_date) if run_date else None)
        shown = run_dir
    print(f"metric trend for {shown}")
    _print_paths(paths, ("html", "trend"))
    if "trend" not in paths:
        print("  trend      not drawn: fewer than two runs with metrics (see trend.html)")
    return 0


def _print_paths(paths: dict[str, str], names: tuple[str, ...]) -> None:
    for name in names:
        if name in paths:
            where = paths[name]
            shown = Path(where).resolve() if is_local_location(where) else where
            print(f"  {name:<10} {shown}")


if __name__ == "__main__":
    sys.exit(main())
