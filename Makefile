# Two entry points for a fresh clone: `make test` and `make bench`.
# Each sets up its own .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test bench bench-full lint clean

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[bench]' || $(PY) -m benchmarks.install
	touch $@

lint: $(VENV)/.test-installed
	$(PY) -m ruff check cachekit tests benchmarks
	$(PY) -m ruff format --check cachekit tests benchmarks
	$(PY) -m mypy --strict cachekit

test: lint
	$(PY) -m pytest -W error

bench: $(VENV)/.bench-installed
	$(PY) -m benchmarks --quick

bench-full: $(VENV)/.bench-installed
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
