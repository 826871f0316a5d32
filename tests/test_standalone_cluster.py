"""The job on a real Spark standalone cluster (master + one worker on 127.0.0.1).

Shows that ./spark-submit.sh --master spark://... runs with the project's code shipped to the
executors (build/item2vec.zip via --py-files), not only importable on the driver. Master and
worker run in their own process groups and are killed whole (executors included) in teardown,
whether the test passes or not.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyspark
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
RUN_DATE = "2026-01-10"
K, DIM = 5, 8
SMALL = [f"--set={kv}" for kv in (
    "sample.users=300", "sample.items=200", "sample.categories=5", "evaluate.enabled=false",
    "train.iterations=1", "corpus.copies=1", f"train.vector_size={DIM}", f"similar.k={K}",
    "spark.log_level=ERROR")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    alive = []
    for pid in map(int, out.split()):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap our own child so that it does not linger as a zombie
            time.sleep(0.2)
        if not group_alive(proc.pid):
            break
    proc.wait(timeout=10)


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_DAEMON_MEMORY": "512m", "SPARK_LOG_DIR": str(d), "SPARK_WORKER_DIR": str(d)}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start([spark_class, "org.apache.spark.deploy.master.Master",
                            "--host", "127.0.0.1", "--port", str(port),
                            "--webui-port", str(ui_port)], d / "master.log", env))
        procs.append(start([spark_class, "org.apache.spark.deploy.worker.Worker", url,
                            "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
                            "--webui-port", str(worker_ui), "--work-dir", str(d / "work")],
                           d / "worker.log", env))
        deadline = time.monotonic() + 120
        while True:  # the master's JSON status lists the worker once it registered
            for p, name in zip(procs, ("master", "worker"), strict=True):
                assert p.poll() is None, f"{name} exited:\n" + (d / f"{name}.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
                    status = json.load(r)
                if status.get("aliveworkers", 0) >= 1:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "worker did not register:\n" + \
                (d / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        yield {"url": url, "dir": d, "procs": procs}
    finally:
        for p in reversed(procs):
            stop_group(p)
        leaked = [pid for p in procs for pid in group_alive(p.pid)]
        assert not leaked, f"processes left running: {leaked}"


@pytest.fixture(scope="module")
def cluster_run(cluster):
    out = cluster["dir"] / "out"
    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g",
           "SPARK_SUBMIT_OPTS_EXTRA": "--conf spark.executor.memory=1g"}
    proc = subprocess.Popen(
        [str(ROOT / "spark-submit.sh"), "--master", cluster["url"], "--output", str(out),
         "--run-date", RUN_DATE, *SMALL],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr[-5000:]
    return {"out": out, "stdout": stdout, "stderr": stderr, "work": cluster["dir"] / "work"}


def read(path: Path) -> pa.Table:
    return ds.dataset(str(path), format="parquet").to_table()


def test_ran_on_the_cluster_with_shipped_code(cluster_run):
    apps = list(cluster_run["work"].glob("app-*"))
    assert len(apps) == 1, apps  # the job ran as an application of the standalone master
    # the executor fetched the project's zip: the code it ran came from there
    assert list(apps[0].glob("*/item2vec.zip")), sorted(apps[0].rglob("*"))
    assert "item2vec run 2026-01-10 published" in cluster_run["stdout"]


def test_outputs_match_the_contract(cluster_run):
    out = cluster_run["out"]
    pointer = (out / "LATEST").read_text().strip()
    assert pointer.startswith(f"dt={RUN_DATE}/run=")
    run = out / pointer
    assert (run / "_SUCCESS").is_file()
    m = json.loads((run / "manifest.json").read_text())
    for key in ("schema_version", "run_date", "status", "started_at", "finished_at", "config",
                "counts", "timings_s", "spark_version"):
        assert key in m, key
    assert m["status"] == "published" and m["run_date"] == RUN_DATE
    for key in ("events_read", "events_rejected", "sessions", "tokens", "vocabulary_size",
                "similar_rows"):
        assert key in m["counts"], key

    vocab = read(run / "vocabulary").sort_by("item_index")
    vectors = read(run / "item_vectors").sort_by("item_index")
    similar = read(run / "similar_items")
    v = vocab.num_rows
    assert v == m["counts"]["vocabulary_size"] > K
    assert vocab.schema.field("item_index").type == pa.int32()
    assert vocab.schema.field("frequency").type == pa.int64()
    assert vocab.column("item_index").to_pylist() == list(range(v))
    assert np.all(np.diff(vocab.column("frequency").to_numpy()) <= 0)
    assert vectors.column("item_id").to_pylist() == vocab.column("item_id").to_pylist()
    assert pa.types.is_float32(vectors.schema.field("vector").type.value_type)
    assert {len(x) for x in vectors.column("vector").to_pylist()} == {DIM}

    assert similar.schema.field("rank").type == pa.int32()
    assert similar.schema.field("score").type == pa.float32()
    assert similar.schema.field("similar_item_id").type == similar.schema.field("item_id").type
    assert similar.num_rows == m["counts"]["similar_rows"]
    rows: dict = {}
    for item, rank, other, score in zip(*(similar.column(c).to_pylist() for c in
                                          ("item_id", "rank", "similar_item_id", "score")),
                                        strict=True):
        rows.setdefault(item, []).append((rank, other, score))
    in_vocab = set(vocab.column("item_id").to_pylist())
    assert in_vocab <= set(rows)  # and items below min_count that co-occur with others
    for item, neighbours in rows.items():
        neighbours.sort()
        n = min(K, v - 1) if item in in_vocab else len(neighbours)
        assert [r for r, _, _ in neighbours] == list(range(1, n + 1)) and 1 <= n <= K
        assert item not in {o for _, o, _ in neighbours}
        scores = [s for _, _, s in neighbours]
        assert all(a >= b for a, b in itertools.pairwise(scores))
