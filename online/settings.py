"""Configuration of the online evaluation job, read from the environment in one place.

| variable                      | default         | meaning                                        |
|-------------------------------|-----------------|------------------------------------------------|
| RECSYS_DATA_DIR               | ./var           | journal read from here; state and outputs go   |
|                               |                 | to <dir>/online                                |
| KAFKA_TOPIC                   | movielog        | the event stream whose journal holds watches   |
|                               |                 | (and the stream's recommendation lines)        |
| ONLINE_WINDOW_HOURS           | 24              | a recommendation converts if the user starts a |
|                               |                 | recommended movie within this much event time  |
|                               |                 | (> 0)                                          |
| ONLINE_DEDUP_SECONDS          | 60              | the same list for the same user again within   |
|                               |                 | this is one recommendation, not two (>= 0)     |
| ONLINE_STREAM_RECOMMENDATIONS | 1               | also evaluate the stream's `recommendation     |
|                               |                 | request` lines (0: only the request log; also  |
|                               |                 | true/false, yes/no, on/off)                    |
| ONLINE_STREAM_SPLIT           | (unset)         | e.g. control=90,treatment=10: label stream     |
|                               |                 | lines with contracts.ab's variant for this     |
|                               |                 | split instead of "stream"                      |
| REQUEST_LOG_PATH              | (unset)         | the service's request log files: glob(s),      |
|                               |                 | comma-separated                                |
| REQUEST_LOG_KAFKA_BOOTSTRAP   | (unset)         | read the request log from this Kafka too       |
| REQUEST_LOG_KAFKA_TOPIC       | recsys-requests | its topic (the service's default)              |
| ONLINE_REFERENCE_LIST         | (unset)         | comma-separated movie IDs that personalisation |
|                               |                 | compares each user's list with; unset: the     |
|                               |                 | list most users got in that version/variant    |
| PUSHGATEWAY_URL               | (unset)         | also push the metrics to this Pushgateway      |
| ONLINE_PUSH_JOB               | recsys_online   | the Pushgateway job name                       |
| ONLINE_SCHEDULE               | @hourly         | the DAG's schedule (read by                    |
|                               |                 | dags/recsys_online.py, which imports only      |
|                               |                 | contracts.env, not this module)                |

An empty value counts as unset; a bad or out-of-range value raises ``SettingsError`` naming
the variable (``contracts.env``).

Request-log and stream recommendations are labelled apart (the stream's carry no variant or
version), so reading both never counts one request twice within a variant; only a stream
split that reuses the service's variant names would mix them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from contracts import ab, locations
from contracts.env import (
    SettingsError,
    comma_list,
    environment,
    flag,
    non_negative_float,
    positive_float,
    read_var,
)
from contracts.response import parse_body

__all__ = ["Settings", "SettingsError"]

DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_DEDUP = timedelta(seconds=60)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    stream_topic: str = locations.DEFAULT_TOPIC
    window: timedelta = DEFAULT_WINDOW
    dedup: timedelta = DEFAULT_DEDUP
    stream_recommendations: bool = True
    stream_split: ab.Split | None = None
    request_log_paths: tuple[str, ...] = ()
    request_log_kafka_bootstrap: str | None = None
    request_log_kafka_topic: str = locations.DEFAULT_REQUEST_LOG_TOPIC
    reference_list: tuple[str, ...] | None = None
    pushgateway_url: str | None = None
    push_job: str = "recsys_online"

    @property
    def out_dir(self) -> Path:
        return self.data_dir / "online"

    @property
    def users_path(self) -> Path:
        """``conversion.user_outcomes`` of every closed exposure: what experiments analyse."""
        return self.out_dir / "users.parquet"

    def stream_assign(self) -> Callable[[int], str] | None:
        """The variant of a stream line's user, or None: label them all "stream"."""
        return None if self.stream_split is None else self.stream_split.assign

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every variable (``os.environ`` unless given); an empty one counts as unset, a bad
        one raises ``SettingsError`` naming it."""
        env = environment(environ)
        d = cls(data_dir=Path())
        hours = read_var(env, "ONLINE_WINDOW_HOURS", positive_float, d.window / timedelta(hours=1))
        dedup = read_var(env, "ONLINE_DEDUP_SECONDS", non_negative_float, d.dedup.total_seconds())
        return cls(
            data_dir=locations.data_dir(env),
            stream_topic=locations.kafka_topic(env),
            window=timedelta(hours=hours),
            dedup=timedelta(seconds=dedup),
            stream_recommendations=read_var(
                env, "ONLINE_STREAM_RECOMMENDATIONS", flag, d.stream_recommendations
            ),
            stream_split=read_var(env, "ONLINE_STREAM_SPLIT", stream_split, d.stream_split),
            request_log_paths=read_var(env, "REQUEST_LOG_PATH", comma_list, d.request_log_paths),
            request_log_kafka_bootstrap=locations.request_log_kafka_bootstrap(env),
            request_log_kafka_topic=locations.request_log_kafka_topic(env),
            reference_list=read_var(env, "ONLINE_REFERENCE_LIST", reference_list, None),
            pushgateway_url=read_var(env, "PUSHGATEWAY_URL", str, d.pushgateway_url),
            push_job=read_var(env, "ONLINE_PUSH_JOB", str, d.push_job),
        )


def stream_split(raw: str) -> ab.Split:
    """``control=90,treatment=10`` -> the split ``contracts.ab`` assigns stream users by."""
    pairs = {}
    for item in raw.split(","):
        name, sep, weight = item.partition("=")
        if not sep:
            raise ValueError(f"{item.strip()!r} is not variant=weight")
        pairs[name.strip()] = weight.strip()
    return ab.parse_split(pairs)


def reference_list(raw: str) -> tuple[str, ...]:
    """Comma-separated movie IDs, as in a response body."""
    return tuple(parse_body(raw))
