# MarketFlow — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# A folder of local wheels (this machine's CPU build of torch), when pip is configured with
# one or it is at the usual place; elsewhere everything comes from the package index.
WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS))
UV := $(shell command -v uv 2>/dev/null)
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup demo up down test test-fast lint lock lock-check bench summary clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing --python 3.11 $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode $(FIND_LINKS) -r requirements-dev.txt
	uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## create the virtual environment from the pinned requirements-dev.txt

demo: setup ## set up, start Airflow/MLflow/API, run the whole pipeline through Airflow, print a summary (EXECUTOR=celery: Celery workers on the local Redis)
	$(VENV)/bin/marketflow demo $(if $(EXECUTOR),--executor $(EXECUTOR))

up: setup ## start Airflow (:8080), MLflow (:5000) and the API (:8000) without running the pipeline (EXECUTOR=celery as for demo)
	$(VENV)/bin/marketflow up $(if $(EXECUTOR),--executor $(EXECUTOR))

down: ## stop everything `make demo`/`make up` started (by pid file)
	@if [ -x $(VENV)/bin/marketflow ]; then $(VENV)/bin/marketflow down; fi

summary: ## print what the last pipeline run produced
	$(VENV)/bin/marketflow summary

test: setup lint ## lint, then the whole test suite against the local PostgreSQL
	$(PY) -m pytest --durations=15

test-fast: setup ## the suite without the end-to-end Airflow runs
	$(PY) -m pytest -m "not e2e"

lint: setup lock-check ## the locks, ruff (lint + format check), mypy (strict on core/ and ml/), sqlfluff on dbt/models
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/sqlfluff lint --disable-progress-bar dbt/models

# The locks: requirements.txt (runtime, the `cpu` extra) and requirements-dev.txt (plus the
# `dev` extra), compiled from pyproject.toml, each keeping the pins it already has unless
# pyproject.toml moved. They pin public versions: the CPU build of torch in a wheel folder is
# `torch==X+cpu`, a local label no index serves, so it is written `torch==X` (which still
# picks that build wherever uv or pip is given the folder).
LOCK_DIR ?= .
COMPILE := uv pip compile pyproject.toml --quiet --python-version 3.11 --no-header $(FIND_LINKS)
PUBLIC := sed -i -E 's/^(torch==[^+ ]+)\+cpu/\1/'

# torch's own pin is dropped before compiling: as a preference, the public `torch==X` would
# pick the index's CUDA build over the folder's `X+cpu`.
UNPIN_TORCH := sed -i -E '/^torch==/d'

lock: ## re-pin requirements.txt and requirements-dev.txt from pyproject.toml
	@touch $(LOCK_DIR)/requirements.txt $(LOCK_DIR)/requirements-dev.txt
	$(UNPIN_TORCH) $(LOCK_DIR)/requirements.txt $(LOCK_DIR)/requirements-dev.txt
	$(COMPILE) --extra cpu -o $(LOCK_DIR)/requirements.txt
	$(PUBLIC) $(LOCK_DIR)/requirements.txt
	$(COMPILE) --extra cpu --extra dev -o $(LOCK_DIR)/requirements-dev.txt
	$(PUBLIC) $(LOCK_DIR)/requirements-dev.txt

lock-check: ## fail when a lock is not what `make lock` writes from pyproject.toml
	@tmp=$$(mktemp -d) && cp requirements.txt requirements-dev.txt $$tmp/ \
	  && $(MAKE) --no-print-directory lock LOCK_DIR=$$tmp >/dev/null \
	  && diff -u requirements.txt $$tmp/requirements.txt \
	  && diff -u requirements-dev.txt $$tmp/requirements-dev.txt; \
	  rc=$$?; rm -rf $$tmp; \
	  if [ $$rc -ne 0 ]; then echo "the locks are stale: run 'make lock' and commit them" >&2; fi; \
	  exit $$rc

bench: setup ## run the benchmarks in bench/
	@for f in bench/bench_*.py; do [ -e "$$f" ] && $(PY) $$f; done; true

clean: down ## stop services and delete local state (.data) and the venv
	rm -rf .data $(VENV) dbt/target dbt/logs
