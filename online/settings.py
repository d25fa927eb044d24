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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from contracts import ab, locations
from contracts.env import (
    FromEnv,
    SettingsError,
    comma_list,
    flag,
    non_negative_float,
    positive_float,
    var,
)
from contracts.response import parse_body

__all__ = ["Settings", "SettingsError"]

DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_DEDUP = timedelta(seconds=60)


def stream_split(raw: str) -> ab.TrafficSplit:
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


def duration(unit: str, parse: Callable[[str], float]) -> Callable[[str], timedelta]:
    """A parser of a number of ``unit`` (``hours``, ``seconds``) into a timedelta."""
    return lambda raw: timedelta(**{unit: parse(raw)})


@dataclass(frozen=True)
class Settings(FromEnv):
    data_dir: Path = locations.DATA_DIR.field(required=True)
    stream_topic: str = locations.KAFKA_TOPIC.field()
    window: timedelta = var(
        "ONLINE_WINDOW_HOURS", duration("hours", positive_float), DEFAULT_WINDOW
    )
    dedup: timedelta = var(
        "ONLINE_DEDUP_SECONDS", duration("seconds", non_negative_float), DEFAULT_DEDUP
    )
    stream_recommendations: bool = var("ONLINE_STREAM_RECOMMENDATIONS", flag, True)
    # (the parser is the module's stream_split, not this field: the field is not bound yet)
    stream_split: ab.TrafficSplit | None = var("ONLINE_STREAM_SPLIT", stream_split)
    request_log_paths: tuple[str, ...] = var("REQUEST_LOG_PATH", comma_list, ())
    request_log_kafka_bootstrap: str | None = locations.REQUEST_LOG_KAFKA_BOOTSTRAP.field()
    request_log_kafka_topic: str = locations.REQUEST_LOG_KAFKA_TOPIC.field()
    reference_list: tuple[str, ...] | None = var("ONLINE_REFERENCE_LIST", reference_list)
    pushgateway_url: str | None = var("PUSHGATEWAY_URL", str)
    push_job: str = var("ONLINE_PUSH_JOB", str, "recsys_online")

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
