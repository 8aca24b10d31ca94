# make test      set-up, local services, lint and every test (what CI runs)
# make services  Cassandra and the Pub/Sub emulator up, with topics and schema
# make run       the whole pipeline (services included)
# make stop      stop the local services
# make bench     throughput and latency figures (BENCHMARKS.md)
# make mutate    mutation score of the core against the unit tests (README, Tests)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv services stop status logs test unit lint format run bench mutate clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

services: venv
	$(PY) -m devtools.services start
	./setup_pubsub.sh

stop:
	@if [ -x $(PY) ]; then $(PY) -m devtools.services stop; fi

status: venv
	$(PY) -m devtools.services status

logs: venv
	$(PY) -m devtools.services logs -f

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test: services lint
	$(PY) -m pytest $(PYTEST_ARGS)

mutate: venv
	rm -rf mutants
	$(VENV)/bin/mutmut run
	$(PY) -m devtools.mutation_score

bench: services
	$(PY) -m bench.benchmark $(BENCH_ARGS)

run: services
	$(PY) -m devtools.run_pipeline

clean: stop
	rm -rf $(VENV) .local .pytest_cache .ruff_cache mutants
