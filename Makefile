# Two commands do all set-up: `make run` (job on the embedded sample) and `make test`.
PY      ?= python3.11
VENV    := .venv
OUT     ?= out
PIP     := $(VENV)/bin/pip install --quiet --disable-pip-version-check

.PHONY: run test venv lint report bench clean

# One stamp per extra installed: `make run` needs the package and the report extra only;
# `make test` adds the dev extra (pytest, ruff, duckdb, and the report and ann extras).
# pip stays quiet (-q): only its errors and warnings show, under our own two lines.
$(VENV)/.installed-%: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python >= 3.11)"; exit 2; }
	@echo "installing item2vec-spark[$*] into $(VENV) (first time: a few minutes) ..."
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@$(PIP) -e '.[$*]'
	@touch $@
	@echo "done"

venv: $(VENV)/.installed-report

run: $(VENV)/.installed-report
	@./spark-submit.sh --output $(OUT) --set report.enabled=true

# pytest exits 5 when it collected no tests: a broken suite, not a pass.
test: $(VENV)/.installed-dev
	@$(VENV)/bin/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

report: $(VENV)/.installed-report
	$(VENV)/bin/item2vec-report --output $(OUT)

bench: $(VENV)/.installed-bench
	$(VENV)/bin/python -m bench.run_all

clean:
	rm -rf build $(OUT) .pytest_cache .ruff_cache
