# make test      set-up, local services, lint and every test (what CI runs)
# make services  Cassandra and the Pub/Sub emulator up, with topics and schema
# make run       the whole pipeline (services included); a role's flags go in its variable:
#                make run PAYMENT_CONSUMER_ARGS="--order-wait 10" ORDER_PRODUCER_ARGS="--count 20"
# make stop      stop the local services, the single node or the cluster (make services-status)
# make cluster   a local three-node Cassandra cluster (instead of the single node)
# make test-cluster  the cluster tests: stops a single node, starts the cluster
# make bench     throughput, latency, CPU per message against the reference design, on loopback
#                and through Toxiproxy (BENCHMARKS.md)
# make toxiproxy the benchmark's network proxy, by hand (API on 127.0.0.1:8474)
# make chaos     1,000,000 orders on the cluster under faults, then an exact account (RELIABILITY.md)
# make chaos-short  the same with 20,000 orders and a compressed schedule
# make mutate    mutation score of the core against the unit tests (README, Tests)
# make lock      re-resolve requirements*.lock from pyproject.toml (LOCK_ARGS=--upgrade: newest)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LOCK_ARGS ?=
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)

.PHONY: venv services cluster stop services-status logs test test-cluster unit lint format run \
	bench toxiproxy chaos chaos-short clean lock mutate

# Exactly the locked versions, each checked against its hash; then the package itself.
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

services: venv
	$(PY) -m devtools.services start

cluster: venv
	$(PY) -m devtools.services start --nodes 3

stop:
	@if [ -x $(PY) ]; then $(PY) -m devtools.services stop; $(PY) -m devtools.toxiproxy stop; fi

toxiproxy: venv
	$(PY) -m devtools.toxiproxy start

# Not `status`: that is `ecom-pipeline status`, the pipeline's table and dead letters.
services-status: venv
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

mutate: venv
	rm -rf mutants
	$(VENV)/bin/mutmut run
	$(PY) -m devtools.mutation_score

bench: services
	$(PY) -m bench.benchmark $(BENCH_ARGS)

chaos: venv
	$(PY) -m chaos $(CHAOS_ARGS)

chaos-short: venv
	$(PY) -m chaos --orders 20000 --compressed $(CHAOS_ARGS)

run: services
	$(PY) -m devtools.run_pipeline

lock:
	$(PYTHON) -m venv .cache/pip-tools
	.cache/pip-tools/bin/pip install --quiet pip-tools
	.cache/pip-tools/bin/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	.cache/pip-tools/bin/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

clean: stop
	rm -rf $(VENV) .local .pytest_cache .ruff_cache mutants
