"""Configuration of the ingest process, read from the environment in one place.

An empty value counts as unset; a bad or out-of-range value raises ``SettingsError`` naming
the variable (``contracts.env``). The shared variables come from ``contracts.locations``.

| variable                 | default        | meaning                                             |
|--------------------------|----------------|-----------------------------------------------------|
| KAFKA_BOOTSTRAP          | 127.0.0.1:9092 | broker(s), comma-separated host:port                |
| KAFKA_TOPIC              | movielog       | the event stream topic                              |
| KAFKA_GROUP              | recsys-ingest  | consumer group that owns the committed offsets      |
| KAFKA_SESSION_TIMEOUT_MS | 10000          | group session; a dead consumer's partitions move on |
| RECSYS_DATA_DIR          | ./var          | root of journal, quarantine and snapshots           |
| RATING_SCALE             | 1-5            | valid star ratings, inclusive (or 1-10)             |
| INGEST_BATCH_SIZE        | 50000          | events per durable batch, at most (>= 1)            |
| INGEST_BATCH_SECONDS     | 5              | seconds per durable batch, at most (> 0)            |
| INGEST_METRICS_PORT      | 9108           | Prometheus /metrics of the consumer; 0: off         |
| SNAPSHOT_URI             | (data dir)     | where snapshots live: a path or s3://bucket/prefix  |
| SNAPSHOT_KEEP            | 14             | snapshots `python -m ingest prune` keeps (>= 1)     |
| DRIFT_*                  | see drift.py   | bounds beyond which a snapshot is marked suspect    |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    integer,
    nested,
    port,
    positive_float,
    positive_int,
    var,
)
from ingest.drift import DriftBounds
from ingest.events import DEFAULT_SCALE, RatingScale

__all__ = ["Settings", "SettingsError"]

DEFAULT_METRICS_PORT = 9108  # from_env's; a Settings built in code serves no metrics (0)


def rating_scale(raw: str) -> RatingScale:
    """``LOW-HIGH``, e.g. ``1-5``: 0 < LOW < HIGH."""
    low, sep, high = raw.partition("-")
    try:
        scale = RatingScale(integer(low.strip()), integer(high.strip()))
    except ValueError:
        scale = None
    if not sep or scale is None or not 0 < scale.low < scale.high:
        raise ValueError("expected LOW-HIGH with 0 < LOW < HIGH, e.g. 1-5")
    return scale


@dataclass(frozen=True)
class Settings(FromEnv):
    data_dir: Path = locations.DATA_DIR.field(required=True)
    bootstrap: str = locations.KAFKA_BOOTSTRAP.field()
    topic: str = locations.KAFKA_TOPIC.field()
    group: str = var("KAFKA_GROUP", str, "recsys-ingest")
    scale: RatingScale = var("RATING_SCALE", rating_scale, DEFAULT_SCALE)
    batch_size: int = var("INGEST_BATCH_SIZE", positive_int, 50_000)
    batch_seconds: float = var("INGEST_BATCH_SECONDS", positive_float, 5.0)
    session_timeout_ms: int = var("KAFKA_SESSION_TIMEOUT_MS", positive_int, 10_000)
    metrics_port: int = var("INGEST_METRICS_PORT", port, DEFAULT_METRICS_PORT, in_code=0)
    snapshot_keep: int = var("SNAPSHOT_KEEP", positive_int, 14)
    snapshots: Path | str | None = locations.SNAPSHOT_URI.field()  # None: <data_dir>/snapshots
    drift: DriftBounds = nested(DriftBounds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """``FromEnv.from_env``, with the snapshots under the data directory unless
        SNAPSHOT_URI says where (``locations.snapshot_location``)."""
        settings = super().from_env(environ)
        return replace(settings, snapshots=settings.snapshots or settings.data_dir)
