"""Bad input, bad config and bad command lines through ``jobs.run.main`` (real Spark, tiny data).

Every case that must be refused exits 2 with ONE line on stderr naming the problem, publishes
nothing and leaves a previously published LATEST untouched. Rows that are merely unusable (null
ids, future times, duplicates, oversized bot sessions) are dropped and counted instead: exit 0,
with the reasons in manifest ``counts.events_rejected``. docs/reliability.md tabulates both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from item2vec.errors import BadInput
from item2vec.sparkenv import check_java
from jobs.run import main

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-01-10"
DAY = dt.datetime(2026, 1, 9, 8, tzinfo=dt.UTC)  # the tiny log's day: inside the run date
USERS, SESSIONS, LENGTH, ITEMS = 20, 2, 4, 6
BASE_EVENTS = USERS * SESSIONS * LENGTH  # 160 events, 40 sessions of 4 distinct items
# Small and fast: every item counts, one training pass, k = 3.
TINY = [f"--set={kv}" for kv in (
    "vocabulary.min_count=1", "train.vector_size=8", "train.iterations=1", "corpus.copies=1",
    "corpus.subsample=0", "similar.k=3", "similar.partitions=1", "evaluate.enabled=false",
    "spark.shuffle_partitions=1", "spark.log_level=ERROR")]


# -- tiny event logs ------------------------------------------------------------------------
def base_rows() -> dict[str, list]:
    rows: dict[str, list] = {"user_id": [], "item_id": [], "timestamp": [], "event_type": []}
    for u in range(USERS):
        for s in range(SESSIONS):
            for j in range(LENGTH):
                rows["user_id"].append(f"u{u:02d}")
                rows["item_id"].append(f"i{(u + 2 * s + j) % ITEMS}")
                rows["timestamp"].append(DAY + dt.timedelta(hours=3 * s, minutes=u, seconds=30 * j))
                rows["event_type"].append("view")
    return rows


def write(path: Path, rows: dict[str, list], schema: pa.Schema | None = None) -> str:
    pq.write_table(pa.table(rows, schema=schema), path)
    return str(path)


def with_column(rows: dict[str, list], name: str, values: list, *, drop: str | None = None):
    out = dict(rows)
    if drop:
        out.pop(drop)
    out[name] = values
    return out


def epoch_s(rows: dict[str, list]) -> list[int]:
    return [int(t.timestamp()) for t in rows["timestamp"]]


# -- helpers ------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root with its size and mtime: 'nothing changed'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def problem_lines(err: str) -> list[str]:
    """stderr minus the job's progress lines ('[item2vec] stage ...')."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[item2vec]")]


def latest_run(out: Path) -> Path:
    """The run LATEST names, resolved relative to the output root."""
    return out / (out / "LATEST").read_text().strip()


def read(path: Path) -> pa.Table:
    return ds.dataset(str(path), format="parquet").to_table()



@pytest.fixture(scope="module")
def published(spark, tmp_path_factory) -> Path:
    """One small good run: the LATEST that every refused case must leave alone."""
    d = tmp_path_factory.mktemp("published")
    good = write(d / "good.parquet", base_rows())
    out = d / "out"
    assert main(["--input", good, "--output", str(out), "--run-date", RUN_DATE, *TINY]) == 0
    assert (out / "LATEST").read_text().strip().startswith(f"dt={RUN_DATE}/run=")
    return out


# -- refused: exit 2, one line, nothing published --------------------------------------------
# (id, build(tmp dir, published output) -> argv, expected message regex). Exit code is 2 for all.
Case = tuple[str, Callable[[Path, Path], list[str]], str]


def _input(rows_fn: Callable[[], dict[str, list]], schema: pa.Schema | None = None):
    def build(d: Path, out: Path) -> list[str]:
        return ["--input", write(d / "events.parquet", rows_fn(), schema), "--output", str(out)]
    return build


def _good_with(*extra: str):
    def build(d: Path, out: Path) -> list[str]:
        return ["--input", write(d / "events.parquet", base_rows()), "--output", str(out), *extra]
    return build


def _args(*extra: str):
    def build(d: Path, out: Path) -> list[str]:
        return ["--input", write(d / "events.parquet", base_rows()), "--output", str(out),
                *(e.format(d=d) for e in extra)]
    return build


def _not_parquet(d: Path, out: Path) -> list[str]:
    (d / "events.parquet").write_text("user_id,item_id\nthis is not parquet\n")
    return ["--input", str(d / "events.parquet"), "--output", str(out)]


def _empty_dir(d: Path, out: Path) -> list[str]:
    (d / "events").mkdir()
    return ["--input", str(d / "events"), "--output", str(out)]


def _output_is_file(d: Path, out: Path) -> list[str]:
    (d / "out.txt").write_text("not a directory\n")
    return [*_good_with()(d, out)[:2], "--output", str(d / "out.txt")]


def _output_under_file(d: Path, out: Path) -> list[str]:
    # Root ignores permission bits, so "not writable" is a path whose parent is a file.
    (d / "blocker").write_text("")
    return [*_good_with()(d, out)[:2], "--output", str(d / "blocker" / "sub")]


def _bad_toml(d: Path, out: Path) -> list[str]:
    (d / "bad.toml").write_text("[train\nwindow = 5\n")
    return [*_good_with()(d, out), "--config", str(d / "bad.toml")]


def _one_session(d: Path, out: Path) -> list[str]:
    rows = {"user_id": ["u"] * 3, "item_id": ["a", "b", "c"],
            "timestamp": [DAY + dt.timedelta(seconds=10 * i) for i in range(3)],
            "event_type": ["view"] * 3}
    return ["--input", write(d / "events.parquet", rows), "--output", str(out),
            "--set", "vocabulary.min_count=5"]


def _single_item(dedupe: bool):
    def build(d: Path, out: Path) -> list[str]:
        rows = base_rows()
        rows["item_id"] = ["only"] * len(rows["item_id"])
        return ["--input", write(d / "events.parquet", rows), "--output", str(out),
                "--set", f"session.dedupe_consecutive={str(dedupe).lower()}"]
    return build


REFUSED: list[Case] = [
    ("input-missing", lambda d, o: ["--input", str(d / "nope.parquet"), "--output", str(o)],
     r"input path does not exist: .*nope\.parquet"),
    ("input-not-parquet", _not_parquet,
     r"cannot read input '.*events\.parquet' as parquet: \[FAILED_READ_FILE\.CANNOT_READ_FILE_F"),
    ("input-empty-dir", _empty_dir, r"cannot read input '.*events' as parquet"),
    ("input-zero-rows", _input(lambda: {k: [] for k in base_rows()},
                               pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                                          ("timestamp", pa.timestamp("us", "UTC")),
                                          ("event_type", pa.string())])),
     r"input has no rows"),
    ("missing-user-col", _input(lambda: with_column(base_rows(), "uid", base_rows()["user_id"],
                                                    drop="user_id")),
     r"input column 'user_id' \(input\.user_col\) not found; available: .*uid"),
    ("missing-item-col", _input(lambda: with_column(base_rows(), "sku", base_rows()["item_id"],
                                                    drop="item_id")),
     r"input column 'item_id' \(input\.item_col\) not found"),
    ("missing-time-col", _input(lambda: with_column(base_rows(), "ts", epoch_s(base_rows()),
                                                    drop="timestamp")),
     r"input column 'timestamp' \(input\.time_col\) not found"),
    ("item-as-float", _input(lambda: with_column(base_rows(), "item_id",
                                                 [float(i[1:]) for i in base_rows()["item_id"]]),
                             pa.schema([("user_id", pa.string()), ("timestamp",
                                        pa.timestamp("us", "UTC")), ("event_type", pa.string()),
                                        ("item_id", pa.float32())])),
     r"'item_id' \(input\.item_col\) has type float; expected string or integer"),
    ("event-type-filters-all", _good_with("--set", 'input.event_types=["purchase"]'),
     rf"no usable events: all {BASE_EVENTS} rows rejected \(event_type_filtered={BASE_EVENTS}\)"),
    ("lookback-filters-all", _good_with("--set", "input.lookback_days=3", "--run-date",
                                        "2026-01-20"),
     rf"no usable events: all {BASE_EVENTS} rows rejected \(before_lookback={BASE_EVENTS}\)"),
    ("min-count-leaves-no-vocabulary", _good_with("--set", "vocabulary.min_count=1000"),
     r"vocabulary has 0 item\(s\) with >= vocabulary\.min_count=1000 occurrences; need at least 2"),
    ("epoch-milliseconds", _input(lambda: with_column(base_rows(), "timestamp",
                                                      [s * 1000 for s in epoch_s(base_rows())])),
     r"every timestamp is outside 1990\.\.2200; values look like milliseconds: "
     r"set input\.time_unit = \"ms\""),
    ("single-item", _single_item(True),
     r"no sessions with >= session\.min_length=2 distinct consecutive items"),
    ("single-item-no-dedupe", _single_item(False), r"vocabulary has 1 item\(s\)"),
    ("single-session", _one_session, r"vocabulary has 0 item\(s\) with >= vocabulary\.min_count=5"),
    ("unknown-config-key", _args("--set", "train.windw=5"),
     r"--set train\.windw: unknown config key train\.windw; known: .*window"),
    ("unknown-config-section", _args("--set", "trian.window=5"),
     r"unknown config section \[trian\]"),
    ("wrong-type-int", _args("--set", "train.window=ten"),
     r"config train\.window: expected int, got 'ten'"),
    ("wrong-type-bool", _args("--set", "evaluate.enabled=1"),
     r"config evaluate\.enabled: expected bool, got 1"),
    ("window-0", _args("--set", "train.window=0"), r"config train\.window: expected a value >= 1"),
    ("k-0", _args("--set", "similar.k=0"), r"config similar\.k: expected a value >= 1, got 0"),
    ("k-negative", _args("--set", "similar.k=-3"), r"config similar\.k: expected a value >= 1"),
    ("dim-0", _args("--set", "train.vector_size=0"),
     r"config train\.vector_size: expected a value >= 1, got 0"),
    ("min-count-0", _args("--set", "vocabulary.min_count=0"),
     r"config vocabulary\.min_count: expected a value >= 1, got 0"),
    ("gap-0", _args("--set", "session.gap_minutes=0"),
     r"config session\.gap_minutes: expected a value > 0, got 0"),
    ("gap-negative", _args("--set", "session.gap_minutes=-5"),
     r"config session\.gap_minutes: expected a value > 0"),
    ("set-without-equals", _args("--set", "train.window"), r"expected section\.key=value"),
    ("run-date-malformed", _args("--run-date", "2026-13-01"),
     r"^item2vec: error: argument --run-date: expected YYYY-MM-DD, got '2026-13-01'$"),
    ("run-date-word", _args("--run-date", "yesterday"),
     r"argument --run-date: expected YYYY-MM-DD"),
    ("output-is-a-file", _output_is_file, r"--output .*out\.txt is a file; expected a directory"),
    ("output-not-writable", _output_under_file, r"--output .*blocker/sub is not writable"),
    ("config-file-missing", _args("--config", "{d}/missing.toml"),
     r"--config .*missing\.toml: file not found"),
    ("config-file-invalid", _bad_toml, r"bad\.toml: invalid TOML"),
    ("output-flag-missing", lambda d, o: ["--input", write(d / "e.parquet", base_rows())],
     r"the following arguments are required: --output"),
]


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_refused_input_exits_2_with_one_line(build, message, published, tmp_path, capsys):
    before = snapshot(published)
    latest = (published / "LATEST").read_text()
    argv = build(tmp_path, published)
    if "--run-date" not in argv:
        argv += ["--run-date", RUN_DATE]
    capsys.readouterr()

    code = main([*TINY, *argv])  # the case's own --set come last and win

    out, err = capsys.readouterr()
    lines = problem_lines(err)
    assert code == 2, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("item2vec: error: "), lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in err and "published" not in out
    assert (published / "LATEST").read_text() == latest
    assert snapshot(published) == before  # nothing new: no partition, no staging, no lock
    assert not list(tmp_path.glob("**/dt=*"))


# -- dropped and counted: exit 0 --------------------------------------------------------------
def _dirty_rows() -> tuple[dict[str, list], dict[str, int]]:
    rows = base_rows()
    bad = [  # (user, item, time, reason)
        (None, "i1", DAY, "null_user"),
        ("   ", "i1", DAY, "null_user"),  # whitespace-only ids count as missing
        ("u01", None, DAY, "null_item"),
        ("u01", "\t ", DAY, "null_item"),
        ("u01", "\u00a0\u3000\n", DAY, "null_item"),  # no-break and ideographic spaces
        ("u01", "i1", None, "null_time"),
        ("u02", "i2", dt.datetime(1970, 1, 2, tzinfo=dt.UTC), "implausible_time"),
        ("u02", "i2", dt.datetime(2026, 1, 11, 0, 0, tzinfo=dt.UTC), "after_run_date"),
        ("u03", "i3", dt.datetime(2026, 1, 12, 9, tzinfo=dt.UTC), "after_run_date"),
        ("u03", "i4", dt.datetime(2030, 6, 1, tzinfo=dt.UTC), "after_run_date"),
    ]
    expected: dict[str, int] = {}
    for user, item, ts, reason in bad:
        rows["user_id"].append(user)
        rows["item_id"].append(item)
        rows["timestamp"].append(ts)
        rows["event_type"].append("view")
        expected[reason] = expected.get(reason, 0) + 1
    return rows, expected


UNICODE_ID = "Ünïcødé-商品-🛒"
LONG_ID = "L" * 5000


def _duplicates_and_odd_ids() -> dict[str, list]:
    rows = base_rows()
    rename = {"i0": UNICODE_ID, "i1": LONG_ID}
    rows["item_id"] = [rename.get(i, i) for i in rows["item_id"]]
    rows["user_id"] = [f"usér {u} 名" for u in rows["user_id"]]
    return {k: v + v for k, v in rows.items()}  # every event twice


BOT_EVENTS, MAX_LEN = 1000, 50


def _bot() -> dict[str, list]:
    rows = base_rows()
    for n in range(BOT_EVENTS):  # one crawler clicking every second: one 1000-event session
        rows["user_id"].append("bot")
        rows["item_id"].append(f"i{n % ITEMS}")
        rows["timestamp"].append(DAY + dt.timedelta(seconds=n))
        rows["event_type"].append("view")
    return rows


def test_null_blank_implausible_and_future_rows_are_dropped_and_counted(published, tmp_path,
                                                                        capsys):
    rows, expected = _dirty_rows()
    out = tmp_path / "out"
    code = main(["--input", write(tmp_path / "e.parquet", rows), "--output", str(out),
                 "--run-date", RUN_DATE, *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    assert problem_lines(err) == []
    counts = json.loads((latest_run(out) / "manifest.json").read_text())["counts"]
    assert counts["events_read"] == BASE_EVENTS + sum(expected.values())
    assert counts["events_rejected"] == expected
    assert counts["events_accepted"] == BASE_EVENTS
    assert (counts["sessions"], counts["tokens"]) == (USERS * SESSIONS, BASE_EVENTS)


def test_duplicates_unicode_and_long_ids(published, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--input", write(tmp_path / "e.parquet", _duplicates_and_odd_ids()),
                 "--output", str(out), "--run-date", RUN_DATE, *TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    run = latest_run(out)
    counts = json.loads((run / "manifest.json").read_text())["counts"]
    assert counts["events_read"] == 2 * BASE_EVENTS
    # Exact duplicates are consecutive repeats of an item: the sessions are the originals.
    assert (counts["sessions"], counts["tokens"]) == (USERS * SESSIONS, BASE_EVENTS)
    vocab = read(run / "vocabulary")
    assert {UNICODE_ID, LONG_ID} <= set(vocab.column("item_id").to_pylist())
    assert sum(vocab.column("frequency").to_pylist()) == BASE_EVENTS
    similar = read(run / "similar_items")
    assert UNICODE_ID in similar.column("similar_item_id").to_pylist()
    assert LONG_ID in similar.column("item_id").to_pylist()


def test_giant_bot_session_is_split_by_max_length(published, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--input", write(tmp_path / "e.parquet", _bot()), "--output", str(out),
                 "--run-date", RUN_DATE, *TINY, "--set", f"session.max_length={MAX_LEN}"])
    err = capsys.readouterr().err
    assert code == 0, err
    counts = json.loads((latest_run(out) / "manifest.json").read_text())["counts"]
    assert counts["events_rejected"] == {}
    assert counts["sessions"] == USERS * SESSIONS + BOT_EVENTS // MAX_LEN
    assert counts["tokens"] == BASE_EVENTS + BOT_EVENTS


# -- Java missing or too old ---------------------------------------------------------------
@pytest.fixture
def old_java(tmp_path) -> Path:
    home = tmp_path / "jdk11"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    java.chmod(0o755)
    return home


def _no_java_path(tmp_path: Path) -> str:
    """A PATH with the usual tools but no java."""
    bin_dir = tmp_path / "nojava-bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "env", "sed", "head", "dirname", "mkdir", "cat"):
        src = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                             text=True).stdout.strip()
        if src:
            (bin_dir / tool).symlink_to(src)
    return str(bin_dir)


def test_check_java_refuses_java_11(old_java, tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(old_java))
    monkeypatch.setenv("PATH", _no_java_path(tmp_path))
    with pytest.raises(BadInput, match=r"is Java 11; Spark 4 needs Java 17 or newer"):
        check_java()


def test_check_java_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", _no_java_path(tmp_path))
    with pytest.raises(BadInput, match=r"java not found \(JAVA_HOME=unset\); install Java 17"):
        check_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    with pytest.raises(BadInput, match=r"java not found \(JAVA_HOME=.*no-such-jdk\)"):
        check_java()


@pytest.mark.parametrize("java", ["old", "missing"])
def test_spark_submit_refuses_bad_java(java, old_java, tmp_path):
    home = old_java if java == "old" else tmp_path / "no-such-jdk"
    env = {**os.environ, "JAVA_HOME": str(home), "PATH": _no_java_path(tmp_path)}
    proc = subprocess.run([str(ROOT / "spark-submit.sh"), "--output", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    expected = r"is Java 11; Spark 4 needs Java 17" if java == "old" else r"java not found"
    assert re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


# -- logs as deployments write them: CSV text, ISO and fractional times, date partitions --------
def _csv_log(path: Path, rows: dict[str, list], times: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,item_id,timestamp,event_type"]
    lines += [f"{u},{i},{t},{e}" for u, i, t, e in zip(rows["user_id"], rows["item_id"], times,
                                                       rows["event_type"], strict=True)]
    path.write_text("\n".join(lines) + "\n")


def _csv_input(times_of: Callable[[list[dt.datetime]], list[str]], *extra: str):
    def build(d: Path, out: Path) -> list[str]:
        rows = base_rows()
        _csv_log(d / "events.csv", rows, times_of(rows["timestamp"]))
        return ["--input", str(d / "events.csv"), "--output", str(out), *extra]
    return build


def _iso(times: list[dt.datetime]) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


REFUSED_READING: list[Case] = [
    ("time-unparseable", _csv_input(lambda ts: [t.strftime("%d/%m/%Y %H:%M:%S") for t in ts]),
     r"no value of the time column \(input\.time_col\) could be read as a time "
     r"\(e\.g\. '09/01/2026 08:00:00'\); expected a timestamp, epoch seconds or ISO-8601 text"),
    ("ids-not-integers", _csv_input(_iso, "--set", "input.id_type=long"),
     r"no user id \(input\.user_col\) is an integer \(e\.g\. 'u00'\); "
     r"set input\.id_type = \"string\""),
    ("time-zone-unknown", _csv_input(_iso, "--set", "input.time_zone=Europe/Berln"),
     r"config input\.time_zone: unknown time zone 'Europe/Berln'; expected an IANA name"),
    ("time-as-boolean", _input(lambda: with_column(base_rows(), "timestamp",
                                                   [True] * BASE_EVENTS)),
     r"'timestamp' \(input\.time_col\) has type boolean; expected a timestamp, epoch seconds "
     r"\(integer or fractional\) or ISO-8601 text"),
]


@pytest.mark.parametrize(("build", "message"), [c[1:] for c in REFUSED_READING],
                         ids=[c[0] for c in REFUSED_READING])
def test_unreadable_logs_exit_2_with_one_line(build, message, published, tmp_path, capsys):
    test_refused_input_exits_2_with_one_line(build, message, published, tmp_path, capsys)


PADDED = ["7", "07", "007", "0007", "00007", "000007"]  # six items, not one


def test_csv_log_with_text_ids_mixed_times_and_date_partitions(published, tmp_path, capsys):
    rows = base_rows()
    rows["item_id"] = [PADDED[int(i[1:])] for i in rows["item_id"]]
    times = [(t.strftime("%Y-%m-%dT%H:%M:%SZ"),  # the same instants, four ways
              (t + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
              f"{t.timestamp():.2f}",
              t.strftime("%Y-%m-%d %H:%M:%S"))[n % 4] for n, t in enumerate(rows["timestamp"])]
    garbage = {k: v[:3] for k, v in rows.items()}
    log = tmp_path / "log"
    _csv_log(log / "dt=2026-01-09" / "part-0.csv", {k: v + garbage[k] for k, v in rows.items()},
             [*times, "09/01/2026 08:00", "soon", "2026-01-09 25:00:00"])
    # Valid rows the lookback window would reject: their partitions must not even be read.
    _csv_log(log / "dt=2025-12-01" / "part-0.csv", garbage, ["2025-12-01T10:00:00Z"] * 3)
    _csv_log(log / "dt=2026-01-11" / "part-0.csv", garbage, ["2026-01-10T23:00:00Z"] * 3)
    out = tmp_path / "out"
    code = main(["--input", str(log), "--output", str(out), "--run-date", RUN_DATE, *TINY,
                 "--set", "input.lookback_days=7"])
    err = capsys.readouterr().err
    assert code == 0, err
    run = out / (out / "LATEST").read_text().strip()
    manifest = json.loads((run / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["events_read"] == BASE_EVENTS + 3
    assert counts["events_rejected"] == {"unparseable_time": 3}
    assert (counts["sessions"], counts["tokens"]) == (USERS * SESSIONS, BASE_EVENTS)
    assert manifest["input"]["format"] == "csv"
    assert (manifest["input"]["files_read"], manifest["input"]["partitions_pruned"]) == (1, 2)
    vocab = read(run / "vocabulary")
    assert vocab.schema.field("item_id").type == pa.string()
    assert sorted(vocab.column("item_id").to_pylist()) == sorted(PADDED)
