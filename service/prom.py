"""The service's Prometheus metrics, correct under several gunicorn workers.

Under gunicorn ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker imports
prometheus_client, so every worker writes its values to its own mmap'd files there and
``/metrics``, whichever worker answers it, merges all of them: counters and histograms sum
over live and dead workers, gauges follow their ``multiprocess_mode`` over live workers only
(gunicorn's ``child_exit`` hook drops a dead worker's gauges). Without the variable (the
Flask test client, a REPL) the same metrics live in the default in-process registry.

Label values are bounded: routes are the URL rules (or ``unmatched``), causes and error
types are small fixed sets, versions are the few published ones.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from service.settings import METRICS_DIR_VARIABLE

UNMATCHED_ROUTE = "unmatched"  # the route label of a 404: raw paths would be unbounded

REQUESTS = Counter(
    "recsys_service_requests", "HTTP requests answered, by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "recsys_service_request_duration_seconds",
    "Time in the app from request to response, by route",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FALLBACKS = Counter(
    "recsys_service_fallbacks",
    "Recommendations answered from the in-memory fallback list, by cause",
    ["cause"],
)
COLD_START = Counter(
    "recsys_service_cold_start_answers", "Unknown users answered with the cold-start list"
)
REDIS_ERRORS = Counter(
    "recsys_service_redis_errors", "Failed Redis calls, by exception type", ["error"]
)
BREAKER_OPEN = Gauge(
    "recsys_service_redis_breaker_open",
    "1 while a worker has stopped asking Redis after repeated failures",
    multiprocess_mode="livemax",
)
MODEL_VERSION = Gauge(
    "recsys_service_model_version_info",
    "1 for each (variant, model version) a live worker answers from",
    ["variant", "version"],
    multiprocess_mode="livemax",
)
PUBLISHED = Gauge(
    "recsys_service_recommendations_published_timestamp_seconds",
    "When the version a variant answers from was published (oldest over live workers)",
    ["variant"],
    multiprocess_mode="livemin",
)
AGE = Gauge(
    "recsys_service_recommendations_age_seconds",
    "Age of the published recommendations a variant answers from (oldest over live workers)",
    ["variant"],
    multiprocess_mode="livemax",
)
REQUEST_LOG_SENT = Counter(
    "recsys_service_request_log_sent", "Request log lines the Kafka producer accepted"
)
REQUEST_LOG_DROPPED = Counter(
    "recsys_service_request_log_dropped",
    "Request log lines lost: queue_full, send_failed, shutdown (Kafka), stdout_error",
    ["cause"],
)


FALLBACK_CAUSES = ("redis_error", "redis_skipped", "no_active_version", "version_missing", "bug")
for _cause in FALLBACK_CAUSES:  # exported as 0 from the start, so rate() sees the first one
    FALLBACKS.labels(_cause)

# (route, status) -> the two children one request updates: labels() takes a lock and builds
# a key each call, a dict lookup does not. Bounded like the labels themselves.
_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, status: int, seconds: float) -> None:
    children = _children.get((route, status))
    if children is None:
        children = (REQUESTS.labels(route, str(status)), LATENCY.labels(route))
        _children[(route, status)] = children
    children[0].inc()
    children[1].observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get(METRICS_DIR_VARIABLE) or None


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's ``child_exit``); its counts stay."""
    if multiprocess_dir():
        _multiprocess.mark_process_dead(pid)
