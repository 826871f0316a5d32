"""Example Airflow DAG: the nightly item2vec job, one run per logical date.

An example to copy into your DAGs folder and adapt; nothing in the repo imports it. Needs
``apache-airflow-providers-apache-spark`` and a Spark connection (Admin -> Connections,
``spark_default``: host ``yarn``, ``spark://master:7077`` or ``k8s://https://…``; deploy mode
client, because the job's Python driver runs from the repo's .venv).

SparkSubmitOperator calls ``spark-submit`` itself, so it cannot run ``./spark-submit.sh``; it
passes the same options that script passes (package zip, packed venv, UTC settings) and runs
``jobs/run.py`` directly. The first task builds the two artifacts the way spark-submit.sh does.
If you would rather keep one code path, replace both tasks by a BashOperator running
``ITEM2VEC_PACK_VENV=1 ./spark-submit.sh --master yarn --run-date {{ ds }} ...``.

Exit status 3 (quality gate failed, run kept but not published) fails the task like any other
non-zero status; LATEST keeps pointing at the previous good run.
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3: core operators live in the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

REPO = "/opt/item2vec"  # a checkout with .venv created (`make venv`) on the Airflow worker
INPUT = "hdfs:///data/events/"
OUTPUT = "hdfs:///data/item2vec/"
CONFIG = f"{REPO}/conf/prod.toml"  # your overrides of conf/default.toml (any subset of keys)
# fmt: off
JOB_ARGS = [
    "--run-date", "{{ ds }}",  # the logical date: yesterday's complete day for a daily DAG
    "--input", INPUT,
    "--output", OUTPUT,
    "--config", CONFIG,
]
# fmt: on

with DAG(
    dag_id="item2vec_nightly",
    schedule="30 2 * * *",  # 02:30 UTC, after the day's events have landed
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs publish into the same output root; never overlap them
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=20)},
    tags=["item2vec", "spark"],
) as dag:
    package = BashOperator(
        task_id="package",
        cwd=REPO,
        # Same contents as spark-submit.sh's zip; the venv pack is rebuilt only when missing
        # (delete build/pyenv.tar.gz after changing dependencies).
        bash_command=(
            "set -euo pipefail; mkdir -p build; "
            ".venv/bin/python -c 'import pathlib, zipfile; "
            'z = zipfile.ZipFile("build/item2vec.zip", "w", zipfile.ZIP_DEFLATED); '
            '[z.write(p) for p in sorted(pathlib.Path("item2vec").rglob("*.py"))]; '
            'z.write("conf/default.toml"); z.close()\'; '
            "[ -f build/pyenv.tar.gz ] || .venv/bin/venv-pack -p .venv -o build/pyenv.tar.gz"
        ),
    )

    item2vec = SparkSubmitOperator(
        task_id="item2vec",
        conn_id="spark_default",
        name="item2vec-{{ ds }}",
        application=f"{REPO}/jobs/run.py",
        py_files=f"{REPO}/build/item2vec.zip",
        archives=f"{REPO}/build/pyenv.tar.gz#pyenv",
        driver_memory="4g",
        # The job applies its session settings (UTC, microsecond timestamps, AQE; see
        # item2vec/sparkenv.py) itself; only what must be fixed before the JVMs start is here.
        # `python -m item2vec.sparkenv --submit-args --master yarn` prints the full list.
        conf={
            "spark.pyspark.python": "./pyenv/bin/python",  # executors: the unpacked venv
            "spark.pyspark.driver.python": f"{REPO}/.venv/bin/python",
            "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
            "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
            "spark.executor.instances": "10",
            "spark.executor.memory": "8g",
        },
        application_args=JOB_ARGS,  # templated: {{ ds }} is the run's logical date
    )

    package >> item2vec
