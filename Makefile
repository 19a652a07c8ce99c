# Two entry points for a fresh clone: `make test` and `make bench`.
# `make test` installs nox in .venv, then nox builds one virtualenv per session under .nox/
# (see noxfile.py): lint once, the suite on every supported CPython found on this machine,
# the suite with the lowest declared cachetools and redis-py, and `make dist`'s build, twine
# check and wheel install. The benchmark gets a virtualenv of its own: its peers constrain
# shared dependencies (asyncache pins cachetools<6), and that must not change what the tests
# and mypy run against.
PYTHON ?= python3
VENV := .venv
NOX := $(VENV)/bin/nox
# Reuse the session virtualenvs of an earlier run (nox still updates what they install).
# .ci/run adds --error-on-missing-interpreters: in CI a supported Python that is not found
# fails the run; elsewhere it is reported and its session skipped.
NOXFLAGS ?=
NOX_RUN := $(NOX) --reuse-venv=yes $(NOXFLAGS)
BENCH_VENV := .venv-bench
BPY := $(BENCH_VENV)/bin/python

.PHONY: test lint dist bench bench-full clean

$(VENV)/.nox-installed: Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet 'nox>=2024.10'
	touch $@

$(BENCH_VENV)/.bench-installed: pyproject.toml
	test -x $(BPY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BPY) -m pip install --quiet --upgrade pip
	$(BPY) -m pip install --quiet -e '.[bench]' || $(BPY) -m benchmarks.install
	touch $@

test: $(VENV)/.nox-installed
	$(NOX_RUN)

lint: $(VENV)/.nox-installed
	$(NOX_RUN) --sessions lint

dist: $(VENV)/.nox-installed
	$(NOX_RUN) --sessions dist

bench: $(BENCH_VENV)/.bench-installed
	$(BPY) -m benchmarks --quick

bench-full: $(BENCH_VENV)/.bench-installed
	$(BPY) -m benchmarks

clean:
	rm -rf $(VENV) $(BENCH_VENV) .nox dist .mypy_cache .pytest_cache .ruff_cache .hypothesis
