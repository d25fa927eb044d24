"""Configuration of the ingest process, read from the environment in one place.

| variable                 | default        | meaning                                             |
|--------------------------|----------------|-----------------------------------------------------|
| KAFKA_BOOTSTRAP          | 127.0.0.1:9092 | broker(s), comma-separated                          |
| KAFKA_TOPIC              | movielog       | the event stream topic                              |
| KAFKA_GROUP              | recsys-ingest  | consumer group that owns the committed offsets      |
| KAFKA_SESSION_TIMEOUT_MS | 10000          | group session; a dead consumer's partitions move on |
| RECSYS_DATA_DIR          | ./var          | root of journal, quarantine and snapshots           |
| RATING_SCALE             | 1-5            | valid star ratings, inclusive (or 1-10)             |
| INGEST_BATCH_SIZE        | 50000          | events per durable batch, at most                   |
| INGEST_BATCH_SECONDS     | 5              | seconds per durable batch, at most                  |
| INGEST_METRICS_PORT      | 9108           | Prometheus /metrics of the consumer; 0: off         |
| SNAPSHOT_URI             | (data dir)     | where snapshots live: a path or s3://bucket/prefix  |
| SNAPSHOT_KEEP            | 14             | snapshots `python -m ingest prune` keeps            |
| DRIFT_*                  | see drift.py   | bounds beyond which a snapshot is marked suspect    |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from contracts.locations import data_dir, snapshot_location
from ingest.drift import DriftBounds
from ingest.events import RatingScale


def _scale(text: str) -> RatingScale:
    low, _, high = text.partition("-")
    scale = RatingScale(int(low), int(high))
    if not 0 < scale.low < scale.high:
        raise ValueError(f"RATING_SCALE={text!r}: expected LOW-HIGH, e.g. 1-5")
    return scale


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    topic: str
    group: str
    data_dir: Path
    scale: RatingScale
    batch_size: int
    batch_seconds: float
    session_timeout_ms: int = 10_000
    metrics_port: int = 0
    snapshot_keep: int = 14
    snapshots: Path | str | None = None  # None: <data_dir>/snapshots
    drift: DriftBounds = field(default_factory=DriftBounds)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
        return cls(
            bootstrap=env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            topic=env("KAFKA_TOPIC", "movielog"),
            group=env("KAFKA_GROUP", "recsys-ingest"),
            data_dir=data_dir(),
            scale=_scale(env("RATING_SCALE", "1-5")),
            batch_size=int(env("INGEST_BATCH_SIZE", "50000")),
            batch_seconds=float(env("INGEST_BATCH_SECONDS", "5")),
            session_timeout_ms=int(env("KAFKA_SESSION_TIMEOUT_MS", "10000")),
            metrics_port=int(env("INGEST_METRICS_PORT", "9108")),
            snapshot_keep=int(env("SNAPSHOT_KEEP", "14")),
            snapshots=snapshot_location(),
            drift=DriftBounds.from_env(os.environ),
        )
