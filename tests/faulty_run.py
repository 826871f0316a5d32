"""The nightly job with first-attempt task failures injected in the corpus and similar stages.

Run through ``ITEM2VEC_JOB=tests/faulty_run.py ./spark-submit.sh ...`` by the retry tests: with
``local[N,F]`` Spark retries the failed tasks and the outputs must equal a clean run's.
"""

import sys

from item2vec.faults import first_attempt_fails
from jobs.run import main

if __name__ == "__main__":
    sys.exit(main(wrap=first_attempt_fails("corpus", "similar")))
