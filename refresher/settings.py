"""Configuration of the refresher, read from the environment in one place.

Where the lists live, how Redis is reached, the list rules and how ranking is split are
precompute's own variables (``precompute/settings.py``: RECSYS_DATA_DIR, REDIS_URL, RULE_*,
PRECOMPUTE_THREADS, PRECOMPUTE_BLOCK_SIZE, ...), read through its settings, so a refreshed
list is built and written exactly as a published one; the stream is ingest's (the same
topic and RATING_SCALE). The refresher's own:

| variable                   | default          | meaning                                        |
|----------------------------|------------------|------------------------------------------------|
| KAFKA_BOOTSTRAP            | 127.0.0.1:9092   | broker(s), comma-separated host:port           |
| KAFKA_TOPIC                | movielog         | the event stream topic                         |
| RATING_SCALE               | 1-5              | valid star ratings, as ingest validates them   |
| REFRESH_KAFKA_GROUP        | recsys-refresher | its consumer group (committed offsets)         |
| REFRESH_SESSION_TIMEOUT_MS | 10000            | group session; a dead refresher's partitions   |
|                            |                  | move on after this long                        |
| REFRESH_BATCH_USERS        | 1000             | users refreshed per batch, at most (>= 1)      |
| REFRESH_BATCH_SECONDS      | 0.2              | events gathered this long, at most, before a   |
|                            |                  | batch is refreshed (> 0)                       |
| REFRESH_MIN_HISTORY        | 3                | movies a user the model never saw needs before |
|                            |                  | a personal list (measured: docs/MODELS.md)     |
| REFRESH_METRICS_PORT       | 9110             | Prometheus /metrics; 0: off                    |

Counts are integers >= 1; an empty value counts as unset; a bad or out-of-range value raises
``SettingsError`` naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import locations
from contracts.env import FromEnv, SettingsError, nested, port, positive_float, positive_int, var
from ingest.events import DEFAULT_SCALE, RatingScale
from ingest.settings import rating_scale
from precompute.settings import Settings as PrecomputeSettings

__all__ = ["Settings", "SettingsError"]

DEFAULT_METRICS_PORT = 9110  # from_env's; a Settings built in code serves no metrics (0)


@dataclass(frozen=True)
class Settings(FromEnv):
    precompute: PrecomputeSettings = nested(PrecomputeSettings)
    bootstrap: str = locations.KAFKA_BOOTSTRAP.field()
    topic: str = locations.KAFKA_TOPIC.field()
    scale: RatingScale = var("RATING_SCALE", rating_scale, DEFAULT_SCALE)
    group: str = var("REFRESH_KAFKA_GROUP", str, "recsys-refresher")
    session_timeout_ms: int = var("REFRESH_SESSION_TIMEOUT_MS", positive_int, 10_000)
    batch_users: int = var("REFRESH_BATCH_USERS", positive_int, 1000)
    batch_seconds: float = var("REFRESH_BATCH_SECONDS", positive_float, 0.2)
    min_history: int = var("REFRESH_MIN_HISTORY", positive_int, 3)
    metrics_port: int = var("REFRESH_METRICS_PORT", port, DEFAULT_METRICS_PORT, in_code=0)
