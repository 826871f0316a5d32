"""A run through ./spark-submit.sh prints the job's own lines and nothing else.

No log4j banner, no INFO/WARN lines from Spark or the JVM, no native-library probes, no Python
warnings: stderr carries the job's progress ("[item2vec] ...") and, on failure, its one-line
reason; stdout carries the summary. Also: the Spark settings come from item2vec.sparkenv only,
and a session the job did not build is used as it is.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from item2vec import sparkenv
from item2vec.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "sample.users=200", "--set", "sample.items=80", "--set", "evaluate.enabled=false",
        "--set", "train.iterations=1"]
# Case matters: Spark's levels and the JVM's "WARNING:" are upper case, Python's warning
# categories end in "Warning:"; "deprecat" and the library names in any case.
NOISE = re.compile(r"\bINFO\b|\bWARN\b|\bWARNING\b|\w+Warning:|(?i:log4j|netlib|deprecat)")


def spark_submit(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # No web UI: another Spark application on the same machine (a second test run) may hold
    # port 4040, and Spark then warns that it moved to 4041. That is about the machine, not
    # the job's output.
    env = {**os.environ, "ITEM2VEC_DRIVER_MEMORY": "1g",
           "SPARK_SUBMIT_OPTS_EXTRA": "--conf spark.ui.enabled=false"}
    return subprocess.run([str(ROOT / "spark-submit.sh"), "--master", "local[2]", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def noise(text: str) -> list[str]:
    """Lines that match NOISE, except the job's own progress lines."""
    return [ln for ln in text.splitlines()
            if NOISE.search(ln) and not ln.startswith("[item2vec]")]


def test_noise_pattern_catches_what_users_saw():
    seen = [
        "WARNING: Using incubator modules: jdk.incubator.vector",
        "Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties",
        "26/11/26 16:05:04 WARN Utils: Your hostname, vm, resolves to a loopback address",
        "26/11/26 16:05:11 INFO SparkContext: Running Spark version 4.3.0",
        "netlib-blas: JNI_OnLoad: dlopen(libblas.so.3) failed: libblas.so.3: cannot open",
        "/x/y.py:3: DeprecationWarning: datetime.utcnow() is deprecated",
        "/x/y.py:3: UserWarning: something",
        "  SetuptoolsDeprecationWarning: License classifiers are deprecated.",
    ]
    assert noise("\n".join(seen)) == seen
    assert noise("[item2vec] train done in 9.5s: 53 vectors\nitem2vec run 2026-11-26 published"
                 "\n  similar to i000001: i000055 (1.00)") == []


@pytest.mark.slow
def test_run_prints_only_the_jobs_own_lines(tmp_path):
    proc = spark_submit("--output", str(tmp_path / "out"), *TINY, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    progress = [ln for ln in proc.stderr.splitlines() if ln.startswith("[item2vec]")]
    assert progress and proc.stdout.strip()  # the job's own lines did arrive, each on its stream
    assert noise(proc.stderr) == [], proc.stderr
    assert noise(proc.stdout) == [], proc.stdout
    assert [ln for ln in proc.stderr.splitlines() if ln.strip() and ln not in progress] == []


@pytest.mark.slow
def test_bad_config_is_one_line_on_stderr_even_through_spark_submit(tmp_path):
    """The driver JVM starts before the job reads its config: none of its start-up lines show."""
    proc = spark_submit("--output", str(tmp_path / "out"), "--set", "train.window=0", timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("item2vec: error: ") and "train.window" in lines[0], lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_submit_args_are_sparkenvs_settings_and_local_binds_to_loopback():
    local = sparkenv.submit_args("local[2]")
    assert local[0::2] == ["--conf"] * (len(local) // 2)
    pairs = dict(arg.split("=", 1) for arg in local[1::2])
    assert pairs == {**sparkenv.SESSION_CONF, "spark.driver.host": "127.0.0.1",
                     "spark.driver.bindAddress": "127.0.0.1"}
    cluster = dict(arg.split("=", 1) for arg in sparkenv.submit_args("yarn")[1::2])
    assert cluster == sparkenv.SESSION_CONF
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "item2vec.sparkenv",
                          "--submit-args", "--master", "local[2]"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == local


def test_driver_options_point_at_the_shipped_log4j_file():
    options = sparkenv.SESSION_CONF["spark.driver.extraJavaOptions"].split()
    assert options == ["-Duser.timezone=UTC", "-Ddev.ludovic.netlib.blas.allowNative=false",
                       f"-Dlog4j2.configurationFile={(ROOT / 'conf/log4j2.properties').as_uri()}"]


def _state(spark) -> tuple:
    """What building a session sets: its settings, shuffle partitions, Spark's log level."""
    root = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getRootLogger()
    keys = [*sparkenv.SESSION_CONF, *sparkenv.LOCAL_CONF, "spark.master", "spark.app.name"]
    return ({key: spark.conf.get(key, None) for key in keys},
            spark.conf.get("spark.sql.shuffle.partitions"), str(root.getLevel()))


def test_a_session_the_job_did_not_build_is_used_as_it_is(spark):
    before = _state(spark)
    assert before[1:] == ("2", "ERROR")  # TEST_CONF's
    with sparkenv.job_session("reuse", log_level="INFO", master="local[1]",
                              shuffle_partitions=7) as session:
        assert session is spark
        assert _state(session) == before
    assert not spark.sparkContext._jsc.sc().isStopped()  # not stopped: not built there
    assert _state(spark) == before


def test_a_reused_session_must_already_write_the_contracts_types(spark):
    spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    try:
        with pytest.raises(BadInput, match=r"has spark\.sql\.parquet\.outputTimestampType=INT96; "
                                           r"the job needs TIMESTAMP_MICROS"):
            sparkenv.get_spark("reuse", log_level="WARN")
    finally:
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
