"""Prometheus metrics of the consumer process, served on ``INGEST_METRICS_PORT``.

Names are stable: the alert rules in ``k8s/`` and the dashboards refer to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

EVENTS = Counter("ingest_events_total", "Accepted events by kind", ["kind"], registry=REGISTRY)
REJECTED = Counter(
    "ingest_rejected_total", "Rejected (quarantined) lines by reason", ["reason"], registry=REGISTRY
)
BATCH_SECONDS = Histogram(
    "ingest_batch_write_seconds",
    "Time to write one batch durably and commit its offsets",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LAG = Gauge(
    "ingest_consumer_lag",
    "Messages in the topic not yet journaled",
    ["partition"],
    registry=REGISTRY,
)
COMMIT_FAILURES = Counter(
    "ingest_commit_failures_total",
    "Offset commits that failed (harmless: the journal, not the commit, is the truth)",
    registry=REGISTRY,
)
CONNECT_FAILURES = Counter(
    "ingest_connect_failures_total", "Failed attempts to reach the broker", registry=REGISTRY
)
LAST_BATCH = Gauge(
    "ingest_last_batch_timestamp_seconds", "When a batch was last made durable", registry=REGISTRY
)
SNAPSHOT_AGE = Gauge(
    "ingest_last_snapshot_age_seconds",
    "Age of the newest snapshot (training data freshness); -1 when there is none",
    registry=REGISTRY,
)


def watch_snapshot_age(created_at: Callable[[], str | None]) -> None:
    """Compute the snapshot age at scrape time, from ``created_at() -> ISO time | None``."""

    def age() -> float:
        stamp = created_at()
        if stamp is None:
            return -1.0
        return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()

    SNAPSHOT_AGE.set_function(age)


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
