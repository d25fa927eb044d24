"""Gunicorn config for the lookup service; every tunable comes from ``service.settings``.

gthread workers: a request is one short Redis round trip, so a few threads per process keep
the CPU busy while one waits on the network, without an event-loop dependency. The worker
and thread counts are explained, with measurements, in docs/BENCHMARKS.md.

Metrics: prometheus_client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR set before a
worker imports it. ``on_starting`` (in the master, before any fork) makes the directory
(a fresh one under /dev/shm unless the variable names one) and empties it, ``child_exit``
drops a dead worker's live gauges, and ``on_exit`` removes a directory it made itself. The
master never imports the metrics module, so no metric object is created before a fork.
"""

# ruff: noqa: N999  (gunicorn's conventional config file name, not a module)
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.settings import METRICS_DIR_VARIABLE, Settings

_settings = Settings.from_env()
_SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None

bind = [_settings.bind]
workers = _settings.web_concurrency
worker_class = (
    "service.worker.PlainErrorThreadWorker"  # gthread + a one-line 400 for huge request lines
)
threads = _settings.gunicorn_threads
keepalive = 5  # the caller reuses connections; longer idles only pin threads
timeout = 30  # a worker silent this long is stuck: kill and replace it
graceful_timeout = 10  # in-flight requests take ms; a rollout should not wait 30 s
accesslog = None  # no access log: the app writes one JSON line per request instead
errorlog = "-"
loglevel = "info"
proc_name = "recsys-service"
# gunicorn >= 25.1 opens a control socket at one fixed path per user ($HOME/.gunicorn): a second
# instance on the host (tests, the demo) would take it over, and images run read-only.
control_socket_disable = True
# Heartbeat files on tmpfs: a slow or read-only container disk must not stall workers.
worker_tmp_dir = _SHM
# stdout carries only the request log's JSON lines (service/requestlog.py writes them
# itself); every logger, the service's own (fallbacks, version switches), gunicorn's and
# libraries' (kafka-python), goes to stderr in gunicorn's format. gunicorn shallow-merges
# this into its defaults; its own loggers keep the handlers errorlog/accesslog give them.
logconfig_dict = {
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "service": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "kafka": {"level": "WARNING", "handlers": ["error_console"], "propagate": False},
    },
}

_made_metrics_dir: str | None = None


def on_starting(server: Any) -> None:
    """Give every worker one clean metrics directory, before the first fork."""
    global _made_metrics_dir  # noqa: PLW0603  (gunicorn hooks are plain module functions)
    path = _settings.metrics_dir
    if path is None:
        _made_metrics_dir = tempfile.mkdtemp(prefix="recsys-metrics-", dir=_SHM)
        path = Path(_made_metrics_dir)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # a previous run's counts must not leak into this one
        stale.unlink()
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    server.log.info("metrics directory: %s", path)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    if os.environ.get(METRICS_DIR_VARIABLE):
        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Flush the worker's request log (Kafka) and close its Redis pool."""
    from service.app import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)


def on_exit(server: Any) -> None:
    if _made_metrics_dir is not None:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)
