# syntax=docker/dockerfile:1
# Two images from one file (docs/DEPLOY.md):
#   --target service   the lean lookup service: Flask + gunicorn + redis-py + prometheus-client,
#                      and swagger-ui-bundle's static files for its /docs page (served by the
#                      service itself: no CDN). No Airflow, torch, pandas or numpy: it only looks
#                      up precomputed answers.
#   --target pipeline  Airflow 3 + ingest/training/precompute/dags: the DAG's workers, the ingest
#                      consumer and the Airflow scheduler/api-server (official Helm chart).
# Neither carries secrets or a model: the service reads published answers from Redis, the
# pipeline writes models to RECSYS_DATA_DIR / the snapshot store at run time.
#
# PYTHON_BASE is pinned to a patch release of a Debian release (Dependabot bumps it, see
# .github/dependabot.yml). `make image-test` overrides it with a base assembled locally by
# debootstrap (scripts/image-base.sh), since no registry is reachable there.
ARG PYTHON_BASE=docker.io/library/python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- service ----------------------
FROM ${PYTHON_BASE} AS service-deps
# pip verifies TLS against this bundle; a build behind a TLS-inspecting proxy bind-mounts the
# host's bundle over it (scripts/image-test.sh). Nothing of it ends up in the final stage.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/req/
RUN /opt/venv/bin/pip install --no-compile -r /tmp/req/requirements.txt -c /tmp/req/constraints.txt \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_BASE} AS service
ARG GIT_SHA=unknown
ARG VERSION=dev
LABEL org.opencontainers.image.title="recsys-service" \
      org.opencontainers.image.description="Movie recommender lookup service (GET /recommend/<userid>)" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.version="${VERSION}"
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin recsys
COPY --from=service-deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICE_BIND=0.0.0.0:8082 \
    RECSYS_GIT_SHA=${GIT_SHA}
WORKDIR /app
# The whole package, fallback.txt included: the last-resort list answered while Redis is down
# (FALLBACK_PATH defaults to it; `python -m service` refuses to start if it is unusable);
# contracts/, the standard-library package of what the service shares with the pipeline; and
# redisconn/, how every role opens Redis (redis-py only).
COPY contracts/ contracts/
COPY redisconn/ redisconn/
COPY service/ service/
RUN python -m compileall -q contracts redisconn service \
    && test -s service/fallback.txt
USER 10001:10001
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8082/healthz', timeout=1)"]
STOPSIGNAL SIGTERM
# `python -m service` validates the settings and the fallback list, then execs gunicorn with
# service/gunicorn.conf.py: gunicorn is PID 1 and gets SIGTERM for a graceful stop.
ENTRYPOINT ["python", "-m", "service"]

# ---------------------------------------------------------------- pipeline ---------------------
FROM ${PYTHON_BASE} AS pipeline-deps
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# torch comes from PyTorch's CPU-only index: PyPI's Linux wheel pulls several GB of CUDA.
# An air-gapped build points this at a local wheel mirror (e.g. a directory served from /opt/wheels).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY requirements-pipeline.txt constraints.txt /tmp/req/
# torch alone and without dependencies from the CPU index (torch==X matches X+cpu); then every
# requirement from PyPI under the constraints, which resolves torch's own dependencies there.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN torch_pin=$(grep -E '^torch==' /tmp/req/requirements-pipeline.txt || true); \
    if [ -n "$torch_pin" ]; then \
        /opt/venv/bin/pip install --no-deps --index-url "$TORCH_INDEX_URL" "$torch_pin"; \
    fi; \
    /opt/venv/bin/pip install -r /tmp/req/requirements-pipeline.txt -c /tmp/req/constraints.txt \
    && /opt/venv/bin/pip check

FROM ${PYTHON_BASE} AS pipeline
ARG GIT_SHA=unknown
ARG VERSION=dev
LABEL org.opencontainers.image.title="recsys-pipeline" \
      org.opencontainers.image.description="Movie recommender pipeline: Airflow DAGs, ingest, training, precompute" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.version="${VERSION}"
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/recsys \
        --shell /bin/bash recsys \
    && install -d -o 10001 -g 10001 /opt/airflow /data
COPY --from=pipeline-deps /opt/venv /opt/venv
WORKDIR /app
# Every package a DAG task or a pipeline Deployment (k8s/base: ingest, refresher) imports
# (contracts/ and redisconn/ are what they share); not service/ (no pipeline package imports it) nor
# simulator/ (never in production).
COPY contracts/ contracts/
COPY redisconn/ redisconn/
COPY ingest/ ingest/
COPY training/ training/
COPY precompute/ precompute/
COPY online/ online/
COPY experiments/ experiments/
COPY refresher/ refresher/
COPY dags/ dags/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/app/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    RECSYS_DATA_DIR=/data \
    RECSYS_GIT_SHA=${GIT_SHA}
USER 10001:10001
# The ingest consumer's and the refresher's Prometheus ports (INGEST_METRICS_PORT,
# REFRESH_METRICS_PORT).
EXPOSE 9108 9110
# No fixed entry point: Kubernetes names the command (`python -m ingest consume`), and the
# Airflow chart runs `airflow scheduler`, `airflow api-server`, ... in this image.
CMD ["python", "-m", "ingest", "--help"]
