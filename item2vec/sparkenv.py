"""Every Spark setting, the Java check and the one place a SparkSession is built.

``SESSION_CONF`` is what every run gets, ``LOCAL_CONF`` is added when the master is local, and
``TEST_CONF`` is the test suite's overlay. spark-submit.sh takes its ``--conf`` arguments from
``python -m item2vec.sparkenv --submit-args --master URL`` (one argument per line), so the
settings are typed only here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from item2vec.errors import BadInput

MIN_JAVA = 17
# The driver's logging: no INFO start-up lines, known harmless warnings at ERROR (reasons in the
# file). Present in a checkout and in an editable install; without it Spark uses its defaults.
LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "log4j2.properties"
# A local master needs no network interface: bind to loopback, so that Spark does not go looking
# for one (and warn when the host name resolves to 127.0.0.1, as it does on many laptops and VMs).
LOCAL_IP = "127.0.0.1"


def _driver_java_options() -> str:
    opts = [
        "-Duser.timezone=UTC",
        # MLlib probes for a system BLAS library from C code, which prints a dlopen failure where
        # there is none. Skip the probe: Word2Vec's short-vector operations then run on netlib's
        # Java Vector API implementation, as they do on every machine without a system BLAS.
        "-Ddev.ludovic.netlib.blas.allowNative=false",
    ]
    if LOG4J_CONFIG.is_file():
        opts.append(f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}")  # URI: no spaces
    return " ".join(opts)


# Settings every run wants, whatever the master.
SESSION_CONF: dict[str, str] = {
    # Sessions are cut and run dates end on UTC days, whatever the machine's time zone.
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": _driver_java_options(),
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    # Plain microsecond timestamps in Parquet (the contract); Spark's default is legacy INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Rows and bytes per Arrow batch handed to a Python task: a batch ends at whichever limit
    # comes first. Rows of the ranking's inputs are items with their lists, or evidence chunks of
    # megabytes (item2vec.cooccurrence): the byte limit keeps one batch in the tens of MB.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "1024",
    "spark.sql.execution.arrow.maxBytesPerBatch": str(64 << 20),
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # Let AQE coalesce shuffles below cached (persisted) stages too.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    # The job prints one line per stage; Spark's progress bar would overwrite them.
    "spark.ui.showConsoleProgress": "false",
    # Every query's plan is rendered as text on the driver (for its event and UI). Plans over
    # persisted joins of joins render to megabytes; a long-lived driver ran out of heap building
    # one. Longer plans are truncated: nothing reads past the first screens.
    "spark.sql.maxPlanStringLength": "64k",
}
# Added when the master is local[...] (spark-submit.sh also exports SPARK_LOCAL_IP=LOCAL_IP).
LOCAL_CONF: dict[str, str] = {
    "spark.driver.host": LOCAL_IP,
    "spark.driver.bindAddress": LOCAL_IP,
}
# The test suite's session: small, two cores, no web UI (suites run side by side), errors only.
TEST_CONF: dict[str, str] = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.log.level": "ERROR",
    # One driver runs every test's queries: keep only the latest queries' descriptions.
    "spark.sql.ui.retainedExecutions": "20",
    "spark.ui.retainedJobs": "100",
    "spark.ui.retainedStages": "100",
}
# What a reused session (a notebook's, a test's) must already have: they change the outputs.
REQUIRED_KEYS = ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType")


def is_local(master: str) -> bool:
    """local, local[N], local[N,F], local[*] and local-cluster[...]: all on this machine."""
    return master.startswith("local")


def session_conf(master: str, overlay: Mapping[str, str] | None = None) -> dict[str, str]:
    """SESSION_CONF, plus LOCAL_CONF for a local master, plus ``overlay``."""
    conf = dict(SESSION_CONF)
    if is_local(master):
        conf.update(LOCAL_CONF)
    conf.update(overlay or {})
    return conf


def submit_args(master: str) -> list[str]:
    """The ``--conf key=value`` arguments spark-submit.sh passes for ``master``."""
    return [arg for key, value in session_conf(master).items()
            for arg in ("--conf", f"{key}={value}")]


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


def new_session(app_name: str, *, log_level: str | None = None, master: str | None = None,
                conf: Mapping[str, str] | None = None) -> SparkSession:
    """Build a session with this module's settings; the caller stops it.

    The master is ``master``, else ``conf``'s spark.master, else spark-submit's (``--master``),
    else ``local[*]``. ``log_level`` (Spark's root level once the session is up) overrides
    ``conf``. Under spark-submit, what its command line set (this module's ``--submit-args``
    and any extra ``--conf``) wins over SESSION_CONF.
    """
    check_java()
    overlay = dict(conf or {})
    submitted = _submitted_conf()
    chosen = master or overlay.get("spark.master") or submitted.get("spark.master") or "local[*]"
    settings = {**session_conf(chosen, overlay), "spark.master": chosen}
    if log_level is not None:
        settings["spark.log.level"] = log_level
    keep_submitted = set(submitted) - set(overlay) - {"spark.log.level"}
    if master:
        keep_submitted.discard("spark.master")
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        if key not in keep_submitted:
            builder = builder.config(key, value)
    # Python workers must use this interpreter (its numpy/pyarrow), not the first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    local_ip = {"SPARK_LOCAL_IP": LOCAL_IP} if is_local(chosen) else {}
    with _environ(**local_ip):  # read by the JVM this starts (a no-op under spark-submit)
        return builder.getOrCreate()


def get_spark(app_name: str, *, log_level: str,
              master: str | None = None,
              shuffle_partitions: int | None = None) -> tuple[SparkSession, bool]:
    """Return (session, created_here). Reuses an active session (tests, notebooks) as it is.

    Settings are applied only to a session built here: a reused one keeps its own (log level,
    shuffle partitions), but must already have the REQUIRED_KEYS values, or BadInput.
    ``shuffle_partitions`` 0 means twice the cluster's cores; None leaves Spark's setting.
    """
    active = SparkSession.getActiveSession()
    if active is None and SparkContext._active_spark_context is not None:
        # The active session is per thread: a job started from another thread of a process
        # that already runs Spark must reuse that session, not "create" (and later stop) it.
        active = SparkSession.builder.getOrCreate()
    if active is not None:
        _check_reused(active)
        return active, False
    session = new_session(app_name, log_level=log_level, master=master)
    if shuffle_partitions is not None:
        session.conf.set("spark.sql.shuffle.partitions",
                         str(shuffle_partitions or 2 * session.sparkContext.defaultParallelism))
    return session, True


def _check_reused(session: SparkSession) -> None:
    for key in REQUIRED_KEYS:
        have, want = session.conf.get(key, None), SESSION_CONF[key]
        if have != want:
            raise BadInput(f"the active SparkSession has {key}={have}; the job needs {want} "
                           f"(set it, or let item2vec.sparkenv build the session)")


def _submitted_conf() -> dict[str, str]:
    """What spark-submit passed to this Python driver (empty outside spark-submit)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}
    from pyspark import SparkConf

    # Connect to spark-submit's JVM first: before that, SparkConf() is an empty Python-side
    # conf, "spark.master" looks unset and --master (e.g. spark://..., local[2,3]) was replaced
    # by local[*].
    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables that are not set yet, for the duration of the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextmanager
def scoped_conf(spark: SparkSession, values: Mapping[str, str]) -> Iterator[None]:
    """SQL settings for the queries planned inside the block (then the previous values)."""
    before = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m item2vec.sparkenv",
        description="Print the job's Spark settings as spark-submit arguments, one per line.")
    parser.add_argument("--submit-args", action="store_true", required=True,
                        help="print --conf key=value pairs for spark-submit")
    parser.add_argument("--master", default="local[*]",
                        help="the master they are for (local masters bind to 127.0.0.1)")
    args = parser.parse_args(argv)
    print("\n".join(submit_args(args.master)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
