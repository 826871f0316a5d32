"""Cached synthetic event logs for the benchmarks (bench/.data/, gitignored).

    .venv/bin/python -m bench.datagen --events 10000000 --items 100000
    .venv/bin/python -m bench.datagen --events 2000000 --items 100000 --files-per-day 3

A log is written once by item2vec.sample.write_parquet and reused while its directory holds a
complete dataset made by the same generator: a `_DONE` marker with the counts and a hash of
item2vec/sample.py, so a changed generator regenerates the log instead of benchmarking stale
data. Events ~= users x sessions_per_user x session_length, so `--events` picks the user
count. The sample's knobs `transition` and `tail_share` default to the job's [sample] values
(conf/default.toml), like every other caller of the generator.

With `--files-per-day N` the log is laid out as the nightly job meets it upstream:
`events/dt=YYYY-MM-DD/part-NNNNN.parquet`, N files per UTC day (one per user chunk), so the
job's lookback window can prune whole days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from item2vec import sample

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"
END = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)  # the log ends at midnight UTC before this day
RUN_DATE = "2026-11-25"  # the last day of the log: the run date that reads all of it
PREVIOUS_DATE = "2026-11-24"  # the night before (night 1 of the nightly benchmark)
DAYS = 30
SESSIONS_PER_USER, SESSION_LENGTH = 4.0, 8.0
GENERATOR = hashlib.sha256(Path(sample.__file__).read_bytes()).hexdigest()[:16]


def dataset(events: int, items: int, *, zipf: float = 1.0, users: int | None = None,
            categories: int | None = None, seed: int = 11, days: int = DAYS,
            transition: float | None = None, tail_share: float | None = None,
            files_per_day: int = 0, quiet: bool = False) -> Path:
    """Path of a cached log (generated now if missing or made by another generator):
    <path>/events/ (part files, or dt=YYYY-MM-DD/ directories with ``files_per_day``) and
    <path>/items.parquet."""
    users = users or max(1, round(events / (SESSIONS_PER_USER * SESSION_LENGTH)))
    categories = categories or max(10, items // 1000)
    name = f"ev{_short(events)}_it{_short(items)}_u{_short(users)}_z{zipf:g}_s{seed}"
    if days != DAYS:
        name += f"_d{days}"
    if transition is not None:
        name += f"_tr{transition:g}"
    if tail_share is not None:
        name += f"_tail{tail_share:g}"
    if files_per_day:
        name += f"_dt{files_per_day}"
    path = DATA / name
    done = path / "_DONE"
    if done.exists() and json.loads(done.read_text()).get("generator") == GENERATOR:
        return path
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    params = {"users": users, "items": items, "categories": categories,
              "sessions_per_user": SESSIONS_PER_USER, "session_length": SESSION_LENGTH,
              "zipf_exponent": zipf, "noise": 0.1, "drift": 0.05, "days": days, "end": END,
              "seed": seed, "transition": transition, "tail_share": tail_share}
    # One file per user chunk; with files_per_day the chunks are then split by day, so each
    # day directory gets one file per chunk.
    per_file = -(-events // files_per_day) if files_per_day else 2_000_000
    counts = sample.write_parquet(path, events_per_file=per_file, **params)
    if files_per_day:
        counts["files"] = _split_by_day(path / "events")
        counts["days"] = days
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    counts["generator"] = GENERATOR
    done.write_text(json.dumps(counts))
    if not quiet:
        print(f"generated {path} {counts}", file=sys.stderr)
    return path


def _split_by_day(events_dir: Path) -> int:
    """part-NNNNN.parquet -> dt=YYYY-MM-DD/part-NNNNN.parquet (UTC day of each event; the
    files keep their columns, the day lives in the directory name). Returns files written."""
    written = 0
    for part in sorted(events_dir.glob("part-*.parquet")):
        table = pq.read_table(part)
        day = pc.cast(table.column("timestamp"), "date32")  # UTC timestamps: the UTC day
        for value in pc.unique(day).to_pylist():
            out = events_dir / f"dt={value.isoformat()}"
            out.mkdir(exist_ok=True)
            pq.write_table(table.filter(pc.equal(day, value)), out / part.name)
            written += 1
        part.unlink()
    return written


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
    p.add_argument("--days", type=int, default=DAYS)
    p.add_argument("--transition", type=float, default=None, help="default: [sample] value")
    p.add_argument("--tail-share", type=float, default=None, help="default: [sample] value")
    p.add_argument("--files-per-day", type=int, default=0,
                   help="write dt=YYYY-MM-DD/ directories with this many files each")
    a = p.parse_args()
    path = dataset(a.events, a.items, zipf=a.zipf, users=a.users, seed=a.seed, days=a.days,
                   transition=a.transition, tail_share=a.tail_share,
                   files_per_day=a.files_per_day)
    print(path, counts(path))


if __name__ == "__main__":
    main()
