"""Prometheus metrics of the refresher, served on ``REFRESH_METRICS_PORT``.

Names are stable: ``monitoring/alerts.yml`` (RecsysRefresherLagging) and the runbook use them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

LAG_EVENTS = Gauge(
    "refresher_lag_events",
    "Events in the topic not yet refreshed into every served version",
    ["partition"],
    registry=REGISTRY,
)
LAG_SECONDS = Gauge(
    "refresher_lag_seconds",
    "Age of the oldest watch or rate event not yet refreshed (0: caught up)",
    registry=REGISTRY,
)
REFRESHED = Counter(
    "refresher_users_refreshed_total",
    "Users' lists rewritten, by whether the version's snapshot knew them",
    ["user"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    "refresher_users_skipped_total",
    "Users with new events left on the cold-start list (history too short or off-catalogue)",
    registry=REGISTRY,
)
FOLD_SECONDS = Histogram(
    "refresher_fold_in_seconds",
    "Folding a batch of users in and ranking them (one version)",
    buckets=SECONDS,
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "refresher_batch_seconds",
    "A whole batch: histories, fold-in and ranking for every served version, the writes",
    buckets=SECONDS,
    registry=REGISTRY,
)
EVENT_TO_WRITE = Histogram(
    "refresher_event_to_write_seconds",
    "From an event reaching the topic to its user's new list written",
    buckets=SECONDS,
    registry=REGISTRY,
)
DISCARDED = Counter(
    "refresher_discarded_writes_total",
    "Batches undone because their version was retired while they were written",
    registry=REGISTRY,
)
REJECTED = Counter(
    "refresher_rejected_total", "Stream lines the grammar rejects", ["reason"], registry=REGISTRY
)
LAST_BATCH = Gauge(
    "refresher_last_batch_timestamp_seconds",
    "When a batch was last written",
    registry=REGISTRY,
)
VERSIONS = Gauge(
    "refresher_served_versions",
    "Versions being refreshed (active + A/B variants)",
    registry=REGISTRY,
)


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0", registry=REGISTRY)
