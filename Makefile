# Two commands do all set-up: `make run` (job on the embedded sample) and `make test`.
PY      ?= python3.11
VENV    := .venv
STAMP   := $(VENV)/.installed
OUT     ?= out

.PHONY: run test venv lint report bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python >= 3.11)"; exit 2; }
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	./spark-submit.sh --output $(OUT) --set report.enabled=true

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

report: $(STAMP)
	$(VENV)/bin/python jobs/report.py --output $(OUT)

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench,ann]'
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf build $(OUT) .pytest_cache .ruff_cache
