"""Java check and the one place a SparkSession is built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark import SparkContext
from pyspark.sql import SparkSession

from item2vec.errors import BadInput

MIN_JAVA = 17
# Settings every run wants, whatever the master: UTC, microsecond Parquet timestamps, Arrow.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # Let AQE coalesce shuffles below cached (persisted) stages too.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}


def java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output ('1.8.0_392' -> 8, '17.0.9' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Fail fast, with what to do, when Java is missing or older than Spark 4 needs."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise BadInput(f"java not found (JAVA_HOME={home or 'unset'}); install Java "
                       f"{MIN_JAVA} (e.g. apt-get install openjdk-{MIN_JAVA}-jre-headless)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BadInput(f"cannot run {java} -version: {exc}") from None
    major = java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        raise BadInput(f"{java} is Java {major or 'of unknown version'}; Spark 4 needs Java "
                       f"{MIN_JAVA} or newer (set JAVA_HOME)")


def get_spark(app_name: str, *, log_level: str,
              master: str | None = None,
              shuffle_partitions: int | None = None) -> tuple[SparkSession, bool]:
    """Return (session, created_here). Reuses an active session (tests, notebooks).

    The master and resources come from spark-submit (or ``--master`` given to it); a plain
    ``python jobs/run.py`` falls back to ``local[*]``. ``shuffle_partitions`` 0 means twice the
    cluster's cores; None leaves the session's setting alone.
    """
    active = SparkSession.getActiveSession()
    if active is None and SparkContext._active_spark_context is not None:
        # The active session is per thread: a job started from another thread of a process
        # that already runs Spark must reuse that session, not "create" (and later stop) it.
        active = SparkSession.builder.getOrCreate()
    if active is None:
        check_java()
        # Python workers must use this interpreter (its numpy/pyarrow), not the first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName(app_name)
        if master or "spark.master" not in _submitted_conf():
            builder = builder.master(master or "local[*]")
        for key, value in SESSION_CONF.items():
            builder = builder.config(key, value)
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        session, created = builder.getOrCreate(), True
    else:
        session, created = active, False
        for key, value in SESSION_CONF.items():
            session.conf.set(key, value)
    session.sparkContext.setLogLevel(log_level)
    _quiet_known_warnings(session, log_level)
    if shuffle_partitions is not None:
        session.conf.set("spark.sql.shuffle.partitions",
                         str(shuffle_partitions or 2 * session.sparkContext.defaultParallelism))
    return session, created


def _submitted_conf() -> set[str]:
    """Keys spark-submit passed to this Python driver (empty outside spark-submit)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return set()
    from pyspark import SparkConf

    # Connect to spark-submit's JVM first: before that, SparkConf() is an empty Python-side
    # conf, "spark.master" looks unset and --master (e.g. spark://..., local[2,3]) was replaced
    # by local[*].
    SparkContext._ensure_initialized()
    return {k for k, _ in SparkConf().getAll()}


def _quiet_known_warnings(spark: SparkSession, log_level: str) -> None:
    """The vocabulary's global window warns about a single partition on purpose; hide that."""
    if log_level not in ("WARN", "ERROR", "FATAL", "OFF"):
        return
    jvm = spark.sparkContext._jvm
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    level = jvm.org.apache.logging.log4j.Level.ERROR
    for name in ("org.apache.spark.sql.execution.window.WindowExec",
                 "org.apache.spark.sql.execution.window",
                 "org.apache.spark.ml.util.Instrumentation"):
        configurator.setLevel(name, level)


@contextmanager
def job_session(app_name: str, *, log_level: str, master: str | None,
                shuffle_partitions: int | None) -> Iterator[SparkSession]:
    """A job's session: built (or reused) on entry, stopped on exit only if built here."""
    session, created = get_spark(app_name, log_level=log_level, master=master,
                                 shuffle_partitions=shuffle_partitions)
    try:
        yield session
    finally:
        if created:
            session.stop()
