"""Command-line plumbing shared by the jobs: common flags and error -> exit code mapping."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Callable

from item2vec.errors import BadInput, Item2VecError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as BadInput (exit 2, one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # guarded() prefixes "<prog>: error: "; adding prog here would print it twice.
        raise BadInput(message)


def job_parser(prog: str, doc: str | None) -> ArgumentParser:
    """A job's parser: its docstring as help (examples kept as written) plus the common flags."""
    parser = ArgumentParser(prog=prog, description=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", metavar="PATH",
                        help="event log (Parquet or CSV file/directory); omit for the sample")
    parser.add_argument("--config", metavar="FILE.toml", help="TOML merged over conf/default.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    parser.add_argument("--run-date", metavar="YYYY-MM-DD", type=parse_run_date,
                        default=last_complete_day(),
                        help="events after the end of this UTC day are rejected (default: the "
                             "last completed UTC day, yesterday: a nightly run never trains on "
                             "a partial day and a re-run gives the same result)")
    parser.add_argument("--master", metavar="URL",
                        help="Spark master when run without spark-submit (default local[*])")


def last_complete_day(now: dt.datetime | None = None) -> dt.date:
    """Yesterday in UTC: the last day whose events are all in."""
    return ((now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC) - dt.timedelta(days=1)).date()


def parse_run_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def guarded(body: Callable[[], int], *, prog: str) -> int:
    """Run ``body`` and turn exceptions into the contract's exit codes with one-line messages."""
    try:
        return body()
    except Item2VecError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unexpected: full trace for the operator, exit 1
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{prog}: failed: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
