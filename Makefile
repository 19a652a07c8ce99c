# Two entry points for a fresh clone: `make test` and `make bench`.
# Each sets up its own virtualenv on first use (and again when pyproject.toml changes).
# The benchmark gets a separate one: its peers constrain shared dependencies (asyncache
# pins cachetools<6), and that must not change what the tests and mypy run against.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BENCH_VENV := .venv-bench
BPY := $(BENCH_VENV)/bin/python

.PHONY: test bench bench-full lint clean

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(BENCH_VENV)/.bench-installed: pyproject.toml
	test -x $(BPY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BPY) -m pip install --quiet --upgrade pip
	$(BPY) -m pip install --quiet -e '.[bench]' || $(BPY) -m benchmarks.install
	touch $@

lint: $(VENV)/.test-installed
	$(PY) -m ruff check cachekit tests benchmarks
	$(PY) -m ruff format --check cachekit tests benchmarks
	$(PY) -m mypy --strict cachekit

test: lint
	$(PY) -m pytest -W error

bench: $(BENCH_VENV)/.bench-installed
	$(BPY) -m benchmarks --quick

bench-full: $(BENCH_VENV)/.bench-installed
	$(BPY) -m benchmarks

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
