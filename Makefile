# make test      set-up, local services, lint and every test (what CI runs)
# make services  Cassandra and the Pub/Sub emulator up, with topics and schema
# make run       the whole pipeline (services included)
# make stop      stop the local services (the single node or the cluster)
# make cluster   a local three-node Cassandra cluster (instead of the single node)
# make test-cluster  the cluster tests: stops a single node, starts the cluster
# make bench     throughput and latency figures (BENCHMARKS.md)
# make chaos     1,000,000 orders on the cluster under faults, then an exact account (RELIABILITY.md)
# make chaos-short  the same with 20,000 orders and a compressed schedule (the CI size)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv services cluster stop status logs test test-cluster unit lint format run bench chaos chaos-short clean

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

cluster: venv
	$(PY) -m devtools.services start --nodes 3
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

test-cluster: venv
	$(PY) -m devtools.services stop cassandra
	$(MAKE) cluster
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

bench: services
	$(PY) -m bench.benchmark $(BENCH_ARGS)

chaos: venv
	$(PY) -m chaos $(CHAOS_ARGS)

chaos-short: venv
	$(PY) -m chaos --orders 20000 --compressed $(CHAOS_ARGS)

run: services
	$(PY) -m devtools.run_pipeline

clean: stop
	rm -rf $(VENV) .local .pytest_cache .ruff_cache
