"""The service's settings (``service.settings``): the documented defaults, parsing and
refusing the environment, and ``python -m service --help`` listing the variables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service import settings
from service.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


DOCUMENTED_DEFAULTS = [
    ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    ("REDIS_TIMEOUT_MS", "50"),
    ("REDIS_BREAKER_FAILURES", "3"),
    ("REDIS_BREAKER_SECONDS", "0.5"),
    ("VERSION_REFRESH_SECONDS", "1.0"),
    ("FALLBACK_PATH", "service/fallback.txt"),
    ("SERVICE_BIND", "127.0.0.1:8082"),
    ("WEB_CONCURRENCY", "2"),
    ("GUNICORN_THREADS", "4"),
    ("REQUEST_LOG", "stdout"),
    ("REQUEST_LOG_KAFKA_BOOTSTRAP", "(unset)"),
    ("REQUEST_LOG_KAFKA_TOPIC", "recsys-requests"),
    ("REQUEST_LOG_QUEUE_SIZE", "10000"),
    ("PROMETHEUS_MULTIPROC_DIR", "(fresh"),
]


def test_settings_defaults_are_the_documented_ones() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"REDIS_URL": "", "FALLBACK_PATH": " "}) == Settings()
    s = Settings()
    assert (s.redis_url, s.redis_timeout_ms, s.version_refresh_seconds) == (
        "redis://127.0.0.1:6379/0",
        50,
        1.0,
    )
    assert (s.redis_breaker_failures, s.redis_breaker_seconds) == (3, 0.5)
    assert s.fallback_path == ROOT / "service" / "fallback.txt"
    assert (s.bind, s.web_concurrency, s.gunicorn_threads) == ("127.0.0.1:8082", 2, 4)
    assert (s.request_log, s.request_log_kafka_bootstrap) == ("stdout", None)
    assert (s.request_log_kafka_topic, s.request_log_queue_size) == ("recsys-requests", 10_000)
    assert s.metrics_dir is None
    doc = settings.__doc__ or ""
    for name, default in DOCUMENTED_DEFAULTS:
        line = next(line for line in doc.splitlines() if line.split()[:1] == [name])
        assert line.split()[1] == default


def test_settings_from_env_parses_and_rejects() -> None:
    env = {
        "REDIS_URL": "redis://10.0.0.5:6380/2",
        "REDIS_TIMEOUT_MS": "30",
        "REDIS_BREAKER_FAILURES": "5",
        "REDIS_BREAKER_SECONDS": "2",
        "VERSION_REFRESH_SECONDS": "0.25",
        "FALLBACK_PATH": "/srv/fallback.txt",
        "SERVICE_BIND": "0.0.0.0:8082",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "8",
        "REQUEST_LOG": "off",
        "REQUEST_LOG_KAFKA_BOOTSTRAP": "k1:9092, k2:9092",
        "REQUEST_LOG_KAFKA_TOPIC": "requests17",
        "REQUEST_LOG_QUEUE_SIZE": "50",
        "PROMETHEUS_MULTIPROC_DIR": "/run/metrics",
    }
    assert Settings.from_env(env) == Settings(
        redis_url="redis://10.0.0.5:6380/2",
        redis_timeout_ms=30,
        version_refresh_seconds=0.25,
        fallback_path=Path("/srv/fallback.txt"),
        bind="0.0.0.0:8082",
        web_concurrency=3,
        gunicorn_threads=8,
        redis_breaker_failures=5,
        redis_breaker_seconds=2.0,
        request_log="off",
        request_log_kafka_bootstrap="k1:9092,k2:9092",
        request_log_kafka_topic="requests17",
        request_log_queue_size=50,
        metrics_dir=Path("/run/metrics"),
    )
    for name, value in [
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_TIMEOUT_MS", "fast"),
        ("REDIS_BREAKER_FAILURES", "0"),
        ("REDIS_BREAKER_SECONDS", "-1"),
        ("VERSION_REFRESH_SECONDS", "-1"),
        ("WEB_CONCURRENCY", "2.5"),
        ("REDIS_URL", "localhost:6379"),
        ("SERVICE_BIND", "8082"),
        ("REQUEST_LOG", "stderr"),
        ("REQUEST_LOG_KAFKA_BOOTSTRAP", "kafka"),
        ("REQUEST_LOG_QUEUE_SIZE", "none"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_main_help_prints_the_variables(run_module: Callable[..., Any]) -> None:
    out = run_module(["-m", "service", "--help"], timeout=30)
    assert out.returncode == 0
    for name, _ in DOCUMENTED_DEFAULTS:
        assert name in out.stdout
