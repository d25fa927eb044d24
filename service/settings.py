"""The service's configuration, read from the environment in one place.

Every knob of the lookup service and its gunicorn config is one of these variables; an
empty value counts as unset, so a manifest can blank a variable to get the default.

    Variable                     Default                   Meaning
    ---------------------------  ------------------------  -----------------------------------------
    REDIS_URL                    redis://127.0.0.1:6379/0  Redis that precompute publishes to
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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts import locations
from contracts.env import (
    SettingsError,
    choice,
    environment,
    non_negative_float,
    positive_int,
    read_var,
)

__all__ = ["Settings", "SettingsError"]

DEFAULT_BIND = "127.0.0.1:8082"
# The last-resort list ships inside the package, so every image and checkout has it.
SHIPPED_FALLBACK = Path(__file__).resolve().with_name("fallback.txt")
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads this name itself
REQUEST_LOG_CHOICES = ("stdout", "off")


@dataclass(frozen=True)
class Settings:
    redis_url: str = locations.DEFAULT_REDIS_URL
    redis_timeout_ms: int = 50
    version_refresh_seconds: float = 1.0
    fallback_path: Path = SHIPPED_FALLBACK
    bind: str = DEFAULT_BIND
    web_concurrency: int = 2
    gunicorn_threads: int = 4
    redis_breaker_failures: int = 3
    redis_breaker_seconds: float = 0.5
    request_log: str = "stdout"
    request_log_kafka_bootstrap: str | None = None
    request_log_kafka_topic: str = locations.DEFAULT_REQUEST_LOG_TOPIC
    request_log_queue_size: int = 10_000
    metrics_dir: Path | None = None

    @property
    def redis_timeout_seconds(self) -> float:
        return self.redis_timeout_ms / 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable (``os.environ`` unless given); bad values raise ``SettingsError``
        at startup rather than surfacing as odd behaviour under load."""
        env = environment(environ)
        d = cls()
        return cls(
            redis_url=locations.redis_url(env),
            redis_timeout_ms=read_var(env, "REDIS_TIMEOUT_MS", positive_int, d.redis_timeout_ms),
            version_refresh_seconds=read_var(
                env, "VERSION_REFRESH_SECONDS", non_negative_float, d.version_refresh_seconds
            ),
            fallback_path=read_var(env, "FALLBACK_PATH", Path, d.fallback_path),
            bind=read_var(env, "SERVICE_BIND", _bind, d.bind),
            web_concurrency=read_var(env, "WEB_CONCURRENCY", positive_int, d.web_concurrency),
            gunicorn_threads=read_var(env, "GUNICORN_THREADS", positive_int, d.gunicorn_threads),
            redis_breaker_failures=read_var(
                env, "REDIS_BREAKER_FAILURES", positive_int, d.redis_breaker_failures
            ),
            redis_breaker_seconds=read_var(
                env, "REDIS_BREAKER_SECONDS", non_negative_float, d.redis_breaker_seconds
            ),
            request_log=read_var(env, "REQUEST_LOG", choice(*REQUEST_LOG_CHOICES), d.request_log),
            request_log_kafka_bootstrap=locations.request_log_kafka_bootstrap(env),
            request_log_kafka_topic=locations.request_log_kafka_topic(env),
            request_log_queue_size=read_var(
                env, "REQUEST_LOG_QUEUE_SIZE", positive_int, d.request_log_queue_size
            ),
            metrics_dir=read_var(env, METRICS_DIR_VARIABLE, Path, d.metrics_dir),
        )


def _bind(raw: str) -> str:
    if not raw.startswith("unix:") and ":" not in raw:
        raise ValueError("must be host:port or unix:/path")
    return raw
