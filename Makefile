# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv test lint fmt demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(STAMP): requirements.txt requirements-pipeline.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

venv: $(STAMP)  ## create .venv with the service, pipeline and test requirements (pinned)

test: venv  ## lint, then run every test against real Redis, Kafka broker, gunicorn and Airflow
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: venv  ## ruff lint and format check only
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fmt: venv  ## format and autofix with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: venv  ## the whole system locally: broker, Redis, traffic, snapshot, DAG, service on :8082
	$(PY) -m devstack.demo

clean:  ## remove the virtual environment and local data
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
