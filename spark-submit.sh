#!/usr/bin/env bash
# The one entry point, locally and on a cluster:
#   ./spark-submit.sh [--master URL] --input PATH --output PATH [--config F.toml]
#                     [--run-date YYYY-MM-DD] [--set section.key=value]...
# Works from a plain shell: no venv activation, no SPARK_HOME needed.
# Environment knobs:
#   ITEM2VEC_JOB=jobs/run.py        which job to run (or jobs/evaluate.py, jobs/tune.py)
#   ITEM2VEC_DRIVER_MEMORY=4g       driver memory (in local mode: the whole job's JVM heap)
#   ITEM2VEC_PACK_VENV=1            ship .venv to executors as a packed archive (YARN/K8s)
#   SPARK_SUBMIT_OPTS_EXTRA="..."   extra spark-submit options, e.g. "--conf spark.executor.memory=8g"
# Spark settings are not typed here: they come from item2vec/sparkenv.py (--submit-args), and the
# driver's logging from conf/log4j2.properties.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ITEM2VEC_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
JOB="${ITEM2VEC_JOB:-jobs/run.py}"

die() { echo "spark-submit.sh: error: $*" >&2; exit 2; }

[ -x "$PY" ] || die "$PY not found; run 'make venv' (or 'make run') first"
if [ -n "${JAVA_HOME:-}" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA="$(command -v java || true)"; fi
[ -n "$JAVA" ] && [ -x "$JAVA" ] || die "java not found; install Java 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
JV="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.\([0-9]*\)\)\{0,1\}.*/\1 \3/p' | head -n1)"
JMAJOR="${JV%% *}"; [ "$JMAJOR" = "1" ] && JMAJOR="${JV##* }"
[ -n "$JMAJOR" ] && [ "$JMAJOR" -ge 17 ] 2>/dev/null || die "$JAVA is Java ${JMAJOR:-unknown}; Spark 4 needs Java 17 or newer (set JAVA_HOME)"

export SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PY}"
export PYSPARK_DRIVER_PYTHON="$PY"

MASTER="local[*]"
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --master) [ $# -ge 2 ] || die "--master needs a URL"; MASTER="$2"; shift 2 ;;
    --master=*) MASTER="${1#--master=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

# The package travels to executors as a zip built from the working tree (never committed).
mkdir -p "$ROOT/build"
ZIP="$ROOT/build/item2vec.zip"
(cd "$ROOT" && "$PY" - "$ZIP" <<'PYZIP'
import os, sys, zipfile
out = sys.argv[1]
tmp = f"{out}.tmp-{os.getpid()}"  # unique: concurrent runs build the zip at once
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for top in ("item2vec",):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    zf.write(os.path.join(dirpath, name))
    zf.write("conf/default.toml")
os.replace(tmp, out)
PYZIP
)

# The job's Spark settings, one spark-submit argument per line (SESSION_CONF, plus LOCAL_CONF
# for a local master).
CONF_LINES="$(cd "$ROOT" && "$PY" -m item2vec.sparkenv --submit-args --master "$MASTER")" \
  || die "cannot read the Spark settings (python -m item2vec.sparkenv); run 'make venv'"
SPARK_CONF=()
while IFS= read -r arg; do SPARK_CONF+=("$arg"); done <<< "$CONF_LINES"

SUBMIT=("$SPARK_HOME/bin/spark-submit" --master "$MASTER" --name item2vec
  --driver-memory "${ITEM2VEC_DRIVER_MEMORY:-4g}"
  --py-files "$ZIP"
  "${SPARK_CONF[@]}")
case "$MASTER" in
  # Spark picks the machine's address before it reads any setting, and warns when the host
  # name resolves to loopback; a local run needs no network: 127.0.0.1 (sparkenv.LOCAL_IP).
  local*) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" ;;
  *)
    if [ "${ITEM2VEC_PACK_VENV:-0}" = "1" ]; then
      PACK="$ROOT/build/pyenv.tar.gz"
      [ -f "$PACK" ] || "$VENV/bin/venv-pack" -p "$VENV" -o "$PACK" \
        || die "venv-pack failed; pip install venv-pack into .venv"
      SUBMIT+=(--archives "$PACK#pyenv" --conf spark.pyspark.python=./pyenv/bin/python
        --conf spark.pyspark.driver.python="$PY")
    fi ;;
esac
# shellcheck disable=SC2206
[ -n "${SPARK_SUBMIT_OPTS_EXTRA:-}" ] && SUBMIT+=(${SPARK_SUBMIT_OPTS_EXTRA})
# spark-submit's PythonRunner merges the Python driver's stderr into the JVM's stdout. Route
# the job's own stderr lines (progress "[item2vec] ...", the one-line "item2vec: error: ..."
# reason) back to stderr, as the contract promises; everything else stays on stdout. The JVM
# keeps this script's pid (exec) and process group; the filters end when the JVM's output does.
route_driver_output() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      "[item2vec"*|"item2vec: "*|"item2vec-tune: "*|"report: "*) printf '%s\n' "$line" >&2 ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
}
# The JVM says "WARNING: Using incubator modules: jdk.incubator.vector" at every start. Spark's
# launcher always adds --add-modules=jdk.incubator.vector (org.apache.spark.launcher.
# JavaModuleOptions) so that MLlib's BLAS, which Word2Vec trains with, runs on the Java Vector
# API; the JVM has no switch for the notice, and leaving the module out would lose that speed.
# So exactly that one line is dropped from the JVM's stderr; everything else passes.
drop_jvm_notice() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    [ "$line" = "WARNING: Using incubator modules: jdk.incubator.vector" ] \
      || printf '%s\n' "$line" >&2
  done
}
exec 2> >(drop_jvm_notice)  # the filter itself writes to the original stderr
exec > >(route_driver_output)
exec "${SUBMIT[@]}" "$ROOT/$JOB" "${ARGS[@]}"
