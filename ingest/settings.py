"""Configuration of the ingest process, read from the environment in one place.

| variable            | default                 | meaning                                        |
|---------------------|-------------------------|------------------------------------------------|
| KAFKA_BOOTSTRAP     | 127.0.0.1:9092          | broker(s), comma-separated                     |
| KAFKA_TOPIC         | movielog                | the event stream topic                         |
| KAFKA_GROUP         | recsys-ingest           | consumer group that owns the committed offsets |
| RECSYS_DATA_DIR     | ./var                   | root of journal, quarantine and snapshots      |
| RATING_SCALE        | 1-5                     | valid star ratings, inclusive (or 1-10)       |
| INGEST_BATCH_SIZE   | 50000                   | events per durable batch, at most              |
| INGEST_BATCH_SECONDS| 5                       | seconds per durable batch, at most             |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingest.events import RatingScale


def data_dir() -> Path:
    """The one root every pipeline stage writes under (shared by ingest, training, precompute)."""
    return Path(os.environ.get("RECSYS_DATA_DIR", "var")).resolve()


def _scale(text: str) -> RatingScale:
    low, _, high = text.partition("-")
    return RatingScale(int(low), int(high))


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    topic: str
    group: str
    data_dir: Path
    scale: RatingScale
    batch_size: int
    batch_seconds: float

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
        )
