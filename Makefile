# MarketFlow — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
WHEELS ?= /opt/wheels
UV := $(shell command -v uv 2>/dev/null)
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup demo up down test test-fast lint lock bench summary clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing --python 3.11 $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode $(if $(wildcard $(WHEELS)),--find-links $(WHEELS)) -r requirements.txt
	uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## create the virtual environment from the pinned requirements.txt

demo: setup ## set up, start Airflow/MLflow/API, run the whole pipeline through Airflow, print a summary
	$(VENV)/bin/marketflow demo

up: setup ## start Airflow (:8080), MLflow (:5000) and the API (:8000) without running the pipeline
	$(VENV)/bin/marketflow up

down: ## stop everything `make demo`/`make up` started (by pid file)
	@if [ -x $(VENV)/bin/marketflow ]; then $(VENV)/bin/marketflow down; fi

summary: ## print what the last pipeline run produced
	$(VENV)/bin/marketflow summary

test: setup lint ## lint, then the whole test suite against the local PostgreSQL
	$(PY) -m pytest

test-fast: setup ## the suite without the end-to-end Airflow runs
	$(PY) -m pytest -m "not e2e"

lint: setup ## ruff (lint + format check), mypy (strict on core/ and ml/), sqlfluff on dbt/models
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/sqlfluff lint --disable-progress-bar dbt/models

lock: ## re-pin requirements.txt from requirements.in
	uv pip compile requirements.in --python 3.11 --find-links $(WHEELS) --emit-find-links --no-header -o requirements.txt

bench: setup ## run the benchmarks in bench/
	@for f in bench/bench_*.py; do [ -e "$$f" ] && $(PY) $$f; done; true

clean: down ## stop services and delete local state (.data) and the venv
	rm -rf .data $(VENV) dbt/target dbt/logs
