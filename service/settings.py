"""The service's configuration, read from the environment in one place.

Every knob of the lookup service and its gunicorn config is one of these variables; an
empty value counts as unset, so a manifest can blank a variable to get the default.

    Variable                     Default                   Meaning
    ---------------------------  ------------------------  -----------------------------------------
    REDIS_URL                    redis://127.0.0.1:6379/0  Redis that precompute publishes to
    REDIS_MODE                   single                    single, cluster or sentinel: how
                                                           REDIS_URL is read (a cluster client and
                                                           a Sentinel client follow failovers)
    REDIS_CLUSTER_NODES          (unset)                   cluster: more startup nodes
                                                           (host:port,...), so that a worker can
                                                           start while one node is down
    REDIS_SENTINELS              (unset)                   sentinel: the sentinels (host:port,...)
    REDIS_SENTINEL_MASTER        recsys                    sentinel: the monitored primary's name
    REDIS_TIMEOUT_MS             50                        connect and read timeout of each Redis
                                                           call: a dead Redis costs ms, not seconds
    REDIS_BREAKER_FAILURES       3                         consecutive Redis failures after which a
                                                           worker stops asking Redis for a while
    REDIS_BREAKER_SECONDS        0.5                       how long it stops; then a request probes
    VERSION_REFRESH_SECONDS      1.0                       how stale the cached active versions and
                                                           A/B split may get before one request
                                                           re-reads them
    FALLBACK_PATH                service/fallback.txt      the list shipped with the image, served
                                                           when Redis is down and no list was seen
                                                           yet; must hold 20 valid IDs or the
                                                           service refuses to start
    SERVICE_BIND                 127.0.0.1:8082            gunicorn bind address (host:port)
    WEB_CONCURRENCY              2                         gunicorn worker processes
    GUNICORN_THREADS             4                         threads per worker (gthread worker class)
    REQUEST_LOG                  stdout                    one JSON line per /recommend request:
                                                           stdout, or off
    REQUEST_LOG_KAFKA_BOOTSTRAP  (unset)                   also produce those lines to Kafka here
                                                           (host:port,...); unset: no Kafka at all
    REQUEST_LOG_KAFKA_TOPIC      recsys-requests           the topic for them
    REQUEST_LOG_QUEUE_SIZE       10000                     lines buffered for Kafka per worker; a
                                                           full buffer drops (and counts) lines
    PROMETHEUS_MULTIPROC_DIR     (fresh temporary dir)     where workers keep their metric files
                                                           (read by prometheus_client itself);
                                                           gunicorn empties it at start
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    FromEnv,
    SettingsError,
    choice,
    nested,
    non_negative_float,
    positive_int,
    var,
)

__all__ = ["Settings", "SettingsError"]

DEFAULT_BIND = "127.0.0.1:8082"
# The last-resort list ships inside the package, so every image and checkout has it.
SHIPPED_FALLBACK = Path(__file__).resolve().with_name("fallback.txt")
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads this name itself
REQUEST_LOG_CHOICES = ("stdout", "off")


def _bind(raw: str) -> str:
    if not raw.startswith("unix:") and ":" not in raw:
        raise ValueError("must be host:port or unix:/path")
    return raw


@dataclass(frozen=True)
class Settings(FromEnv):
    """Every variable is read at start-up (``from_env``): a bad value raises ``SettingsError``
    then, rather than surfacing as odd behaviour under load."""

    redis_url: str = locations.REDIS_URL.field()
    redis_topology: locations.RedisTopology = nested(locations.RedisTopology)
    redis_timeout_ms: int = var("REDIS_TIMEOUT_MS", positive_int, 50)
    version_refresh_seconds: float = var("VERSION_REFRESH_SECONDS", non_negative_float, 1.0)
    fallback_path: Path = var("FALLBACK_PATH", Path, SHIPPED_FALLBACK)
    bind: str = var("SERVICE_BIND", _bind, DEFAULT_BIND)
    web_concurrency: int = var("WEB_CONCURRENCY", positive_int, 2)
    gunicorn_threads: int = var("GUNICORN_THREADS", positive_int, 4)
    redis_breaker_failures: int = var("REDIS_BREAKER_FAILURES", positive_int, 3)
    redis_breaker_seconds: float = var("REDIS_BREAKER_SECONDS", non_negative_float, 0.5)
    request_log: str = var("REQUEST_LOG", choice(*REQUEST_LOG_CHOICES), "stdout")
    request_log_kafka_bootstrap: str | None = locations.REQUEST_LOG_KAFKA_BOOTSTRAP.field()
    request_log_kafka_topic: str = locations.REQUEST_LOG_KAFKA_TOPIC.field()
    request_log_queue_size: int = var("REQUEST_LOG_QUEUE_SIZE", positive_int, 10_000)
    metrics_dir: Path | None = var(METRICS_DIR_VARIABLE, Path)

    @property
    def redis_timeout_seconds(self) -> float:
        return self.redis_timeout_ms / 1000
