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
from dataclasses import dataclass, field
from pathlib import Path

from contracts import locations
from contracts.env import (
    SettingsError,
    environment,
    integer,
    port,
    positive_float,
    positive_int,
    read_var,
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
class Settings:
    data_dir: Path
    bootstrap: str = locations.DEFAULT_KAFKA_BOOTSTRAP
    topic: str = locations.DEFAULT_TOPIC
    group: str = "recsys-ingest"
    scale: RatingScale = DEFAULT_SCALE
    batch_size: int = 50_000
    batch_seconds: float = 5.0
    session_timeout_ms: int = 10_000
    metrics_port: int = 0
    snapshot_keep: int = 14
    snapshots: Path | str | None = None  # None: <data_dir>/snapshots
    drift: DriftBounds = field(default_factory=DriftBounds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable (``os.environ`` unless given); a bad value raises ``SettingsError``."""
        env = environment(environ)
        d = cls(data_dir=Path())
        root = locations.data_dir(env)
        return cls(
            data_dir=root,
            bootstrap=locations.kafka_bootstrap(env),
            topic=locations.kafka_topic(env),
            group=read_var(env, "KAFKA_GROUP", str, d.group),
            scale=read_var(env, "RATING_SCALE", rating_scale, d.scale),
            batch_size=read_var(env, "INGEST_BATCH_SIZE", positive_int, d.batch_size),
            batch_seconds=read_var(env, "INGEST_BATCH_SECONDS", positive_float, d.batch_seconds),
            session_timeout_ms=read_var(
                env, "KAFKA_SESSION_TIMEOUT_MS", positive_int, d.session_timeout_ms
            ),
            metrics_port=read_var(env, "INGEST_METRICS_PORT", port, DEFAULT_METRICS_PORT),
            snapshot_keep=read_var(env, "SNAPSHOT_KEEP", positive_int, d.snapshot_keep),
            snapshots=locations.snapshot_location(root, env),
            drift=DriftBounds.from_env(env),
        )
