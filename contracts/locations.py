"""Where things live, for every process: the variables several packages read.

Each is defined here once, with its default, and read through ``contracts.env``; a
package's own settings module reads these through the functions below and keeps only its
own knobs.

| variable                    | default                  | read by                          |
|-----------------------------|--------------------------|----------------------------------|
| RECSYS_DATA_DIR             | ./var                    | ingest, training, precompute,    |
|                             |                          | online, experiments              |
| SNAPSHOT_URI                | (the data dir)           | snapshots: a path or             |
|                             |                          | s3://bucket/prefix               |
| REDIS_URL                   | redis://127.0.0.1:6379/0 | precompute, service, experiments |
| KAFKA_BOOTSTRAP             | 127.0.0.1:9092           | ingest, simulators               |
| KAFKA_TOPIC                 | movielog                 | ingest, online, simulators       |
| REQUEST_LOG_KAFKA_BOOTSTRAP | (unset)                  | service (writes), online (reads) |
| REQUEST_LOG_KAFKA_TOPIC     | recsys-requests          | service (writes), online (reads) |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from contracts import env as envvars

DEFAULT_DATA_DIR = "var"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC = "movielog"
DEFAULT_REQUEST_LOG_TOPIC = "recsys-requests"


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The one root every pipeline stage writes under."""
    raw = envvars.read_var(envvars.environment(env), "RECSYS_DATA_DIR", str, DEFAULT_DATA_DIR)
    return Path(raw).resolve()


def snapshot_location(root: Path | None = None, env: Mapping[str, str] | None = None) -> Path | str:
    """Where snapshots live: SNAPSHOT_URI if set, else ``root`` (a caller's own data
    directory), else the data directory."""
    uri = envvars.read_var(envvars.environment(env), "SNAPSHOT_URI", str, "")
    return uri or root or data_dir(env)


def redis_url(env: Mapping[str, str] | None = None) -> str:
    return envvars.read_var(
        envvars.environment(env), "REDIS_URL", envvars.redis_url, DEFAULT_REDIS_URL
    )


def kafka_bootstrap(env: Mapping[str, str] | None = None) -> str:
    return envvars.read_var(
        envvars.environment(env),
        "KAFKA_BOOTSTRAP",
        envvars.bootstrap_servers,
        DEFAULT_KAFKA_BOOTSTRAP,
    )


def kafka_topic(env: Mapping[str, str] | None = None) -> str:
    return envvars.read_var(envvars.environment(env), "KAFKA_TOPIC", str, DEFAULT_TOPIC)


def request_log_kafka_bootstrap(env: Mapping[str, str] | None = None) -> str | None:
    return envvars.read_var(
        envvars.environment(env), "REQUEST_LOG_KAFKA_BOOTSTRAP", envvars.bootstrap_servers, None
    )


def request_log_kafka_topic(env: Mapping[str, str] | None = None) -> str:
    return envvars.read_var(
        envvars.environment(env), "REQUEST_LOG_KAFKA_TOPIC", str, DEFAULT_REQUEST_LOG_TOPIC
    )
