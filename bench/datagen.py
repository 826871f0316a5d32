"""Cached synthetic event logs for the benchmarks (bench/.data/, gitignored).

    .venv/bin/python -m bench.datagen --events 10000000 --items 100000
    .venv/bin/python -m bench.datagen --events 1000000 --items 100000 --zipf 1.0

A log is written once by item2vec.sample.write_parquet and reused when its directory already
holds a complete dataset (a `_DONE` marker with the counts). Events ~= users x
sessions_per_user x session_length, so `--events` picks the user count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from item2vec import sample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"
END = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)  # run with --run-date 2026-11-25
RUN_DATE = "2026-11-25"
SESSIONS_PER_USER, SESSION_LENGTH = 4.0, 8.0


def dataset(events: int, items: int, *, zipf: float = 1.0, users: int | None = None,
            categories: int | None = None, seed: int = 11, quiet: bool = False) -> Path:
    """Path of a cached log (generated now if missing): <path>/events/*.parquet, items.parquet."""
    users = users or max(1, round(events / (SESSIONS_PER_USER * SESSION_LENGTH)))
    categories = categories or max(10, items // 1000)
    name = f"ev{_short(events)}_it{_short(items)}_u{_short(users)}_z{zipf:g}_s{seed}"
    path = DATA / name
    done = path / "_DONE"
    if done.exists():
        return path
    t0 = time.perf_counter()
    counts = sample.write_parquet(path, users=users, items=items, categories=categories,
                                  sessions_per_user=SESSIONS_PER_USER,
                                  session_length=SESSION_LENGTH, zipf_exponent=zipf,
                                  noise=0.1, drift=0.05, days=30, end=END, seed=seed)
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    done.write_text(json.dumps(counts))
    if not quiet:
        print(f"generated {path} {counts}", file=sys.stderr)
    return path


def counts(path: Path) -> dict:
    return json.loads((path / "_DONE").read_text())


def _short(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=None, help="default: events / 32")
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args()
    path = dataset(a.events, a.items, zipf=a.zipf, users=a.users, seed=a.seed)
    print(path, counts(path))


if __name__ == "__main__":
    main()
