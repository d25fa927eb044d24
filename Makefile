# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
S3VENV := .venv-s3
S3STAMP := $(S3VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv test test-deps test-e2e lint fmt demo observe experiment-demo airflow airflow-screenshot \
	docs-screenshot leaderboard-ml100k clean bench bench-ingest bench-train bench-precompute bench-service \
	deploy-venv ci-lint k8s-check rules-test image-test dashboard deploy-check bench-refresh eval-refresh

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(STAMP): requirements.txt requirements-pipeline.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

$(S3STAMP): requirements-s3.txt
	$(PYTHON) -m venv $(S3VENV)
	$(S3VENV)/bin/python -m pip install -q -r requirements-s3.txt
	touch $@

venv: $(STAMP) $(S3STAMP)  ## create .venv (service, pipeline, tests) and .venv-s3 (the test broker's S3), pinned

test: lint test-deps  ## lint, then run every test against real Redis, Kafka broker, gunicorn and Airflow
	$(PY) -m pytest

# Debian packages some tests drive: headless Chromium (the /docs page), the Prometheus server
# (make observe). Installed by scripts/ci-deps.sh only when missing, as for the deploy checks.
test-deps:  ## install the Debian packages the tests need (chromium, prometheus), only those missing
	scripts/ci-deps.sh chromium=chromium prometheus=prometheus

test-e2e: venv  ## airflow standalone on loopback: trigger the DAG through the REST API, check what it published
	$(PY) -m pytest tests_e2e

lint: venv  ## ruff lint and format check, the packages' import contracts (import-linter), mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

fmt: venv  ## format and autofix with ruff
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

demo: venv  ## the whole system locally: broker, Redis, traffic, snapshot, DAG, service on :8082
	$(PY) -m devstack.demo

observe: venv  ## make demo, watched by Prometheus on :9090 (monitoring/prometheus.yml + alerts.yml)
	scripts/ci-deps.sh prometheus=prometheus
	$(PY) -m devstack.demo --observe

experiment-demo: venv  ## closed loop: app users vs the live service, A/B test + bandit, neural vs random; report in var/experiment-demo
	$(PY) -m devstack.experiment

airflow: venv  ## Airflow's UI on 127.0.0.1:8080 (admin / admin) running the DAGs over local Redis + broker
	$(PY) -m devstack.airflow

airflow-screenshot: venv  ## regenerate docs/airflow-graph.png: a run in Airflow's graph view (headless Chromium)
	scripts/ci-deps.sh chromium=chromium
	$(PY) -m devstack.airflow_screenshot

docs-screenshot: venv  ## regenerate docs/api-docs.png: the service's /docs page, an operation tried (headless Chromium)
	scripts/ci-deps.sh chromium=chromium
	$(PY) -m devstack.docs_screenshot

leaderboard-ml100k: venv  ## the leaderboard on MovieLens-100K (fetched hash-checked from PyPI): JSON + report in var/ml100k
	$(PY) -m training.evaluate --ratings $$($(PY) -m devstack.ml100k) --svd-cv --report var/ml100k/report

.PHONY: tune
tune: venv  ## choose hyper-parameters on a validation split of MovieLens-100K's training part: var/ml100k/tuned.json
	$(PY) -m training.tune --ratings $$($(PY) -m devstack.ml100k) --out var/ml100k/tuned.json

.PHONY: eval-refresh
eval-refresh: venv  ## MovieLens-100K's held-out ratings sent one by one through the live refresher: the service's answers scored with and without it, one JSON line
	$(PY) -m devstack.eval_refresh --ratings $$($(PY) -m devstack.ml100k)

.PHONY: eval-served
eval-served: venv  ## quality through the live service on MovieLens-100K (replay, consume, DAG, gunicorn) vs the leaderboard, same global split: one JSON line
	$(PY) -m devstack.eval_served

bench: bench-ingest bench-train bench-precompute bench-service bench-refresh  ## every benchmark; figures go to docs/BENCHMARKS.md

bench-refresh: venv  ## event on the topic -> the service answering the changed list (p50/p99), refresh throughput vs bare scoring
	$(PY) -m bench.refresh

bench-ingest: venv  ## 1M lines through the real broker: consume->validate->write vs a bare consume loop
	$(PY) -m bench.ingest

bench-train: venv  ## model fit time and peak memory at service scale, against a bare GEMM
	$(PY) -m bench.train

bench-precompute: venv  ## 1M users x 27k movies: score+exclude+top-20 vs the bare product; publish vs redis-benchmark, one node and a Redis Cluster
	scripts/ci-deps.sh redis-benchmark=redis-tools
	$(PY) -m bench.precompute

bench-service: venv  ## wrk against gunicorn+Redis vs the same gunicorn serving a constant (and a bare redis-py MGET app, and the service on a Redis Cluster)
	scripts/ci-deps.sh wrk=wrk
	$(PY) -m bench.service

clean:  ## remove the virtual environment and local data
	rm -rf $(VENV) $(S3VENV) var .pytest_cache .ruff_cache .hypothesis

# ---- deployment artifacts (Dockerfile, k8s/, monitoring/, .github/): checked offline --------
# Their tools live in .venv-deploy; Debian packages (buildah, podman, debootstrap, prometheus)
# are installed by scripts/ci-deps.sh only when missing. `make test` needs none of this.
DEPLOY := .venv-deploy
DEPLOY_STAMP := $(DEPLOY)/.installed-stamp

$(DEPLOY_STAMP): requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY)
	$(DEPLOY)/bin/python -m pip install -q -r requirements-deploy.txt
	touch $@

deploy-venv: $(DEPLOY_STAMP)  ## .venv-deploy: hadolint, shellcheck, kubernetes-validate, grafanalib, check-jsonschema

ci-lint: $(DEPLOY_STAMP)  ## hadolint the Dockerfile, shellcheck scripts, schema-check the GitHub workflow
	scripts/ci-lint.sh

k8s-check: $(DEPLOY_STAMP)  ## kubernetes-validate --strict on k8s/base and each rendered overlay
	scripts/k8s-check.sh

rules-test: $(DEPLOY_STAMP)  ## promtool: scrape config, alert rules and their unit tests, dashboard queries
	scripts/ci-deps.sh promtool=prometheus
	scripts/rules-test.sh

image-test: venv $(DEPLOY_STAMP)  ## build the service image with buildah, run it against a local Redis, check it
	scripts/ci-deps.sh buildah=buildah podman=podman debootstrap=debootstrap
	scripts/image-test.sh

dashboard: $(DEPLOY_STAMP)  ## regenerate monitoring/grafana/recsys.json from monitoring/dashboard.py
	$(DEPLOY)/bin/python monitoring/dashboard.py

deploy-check: ci-lint k8s-check rules-test image-test  ## every deployment check .ci/run runs after make test
