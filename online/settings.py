"""Configuration of the online evaluation job, read from the environment in one place.

| variable                      | default         | meaning                                        |
|-------------------------------|-----------------|------------------------------------------------|
| RECSYS_DATA_DIR               | ./var           | journal read from here; state and outputs go   |
|                               |                 | to <dir>/online                                |
| KAFKA_TOPIC                   | movielog        | the event stream whose journal holds watches   |
|                               |                 | (and the stream's recommendation lines)        |
| ONLINE_WINDOW_HOURS           | 24              | a recommendation converts if the user starts a |
|                               |                 | recommended movie within this much event time  |
| ONLINE_DEDUP_SECONDS          | 60              | the same list for the same user again within   |
|                               |                 | this is one recommendation, not two            |
| ONLINE_STREAM_RECOMMENDATIONS | 1               | also evaluate the stream's `recommendation     |
|                               |                 | request` lines (0: only the request log)       |
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
|                               |                 | dags/recsys_online.py, which imports nothing)  |

Request-log and stream recommendations are labelled apart (the stream's carry no variant or
version), so reading both never counts one request twice within a variant; only a stream
split that reuses the service's variant names would mix them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from contracts import ab
from contracts.locations import data_dir
from contracts.response import parse_body
from service.settings import Settings as ServiceSettings

DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_DEDUP = timedelta(seconds=60)
DEFAULT_STREAM_TOPIC = "movielog"  # ingest's KAFKA_TOPIC default


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    stream_topic: str = DEFAULT_STREAM_TOPIC
    window: timedelta = DEFAULT_WINDOW
    dedup: timedelta = DEFAULT_DEDUP
    stream_recommendations: bool = True
    stream_split: ab.Split | None = None
    request_log_paths: tuple[str, ...] = ()
    request_log_kafka_bootstrap: str | None = None
    request_log_kafka_topic: str = ServiceSettings.request_log_kafka_topic
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
    def from_env(cls) -> Settings:
        """Every variable; an empty one counts as unset."""

        def get(name: str) -> str | None:
            return os.environ.get(name, "").strip() or None

        d = cls(data_dir=Path())
        hours = float(get("ONLINE_WINDOW_HOURS") or 24)
        dedup = float(get("ONLINE_DEDUP_SECONDS") or 60)
        if not (hours > 0 and dedup >= 0):
            raise ValueError("ONLINE_WINDOW_HOURS must be > 0 and ONLINE_DEDUP_SECONDS >= 0")
        split = get("ONLINE_STREAM_SPLIT")
        paths = get("REQUEST_LOG_PATH")
        reference = get("ONLINE_REFERENCE_LIST")
        return cls(
            data_dir=data_dir(),
            stream_topic=get("KAFKA_TOPIC") or d.stream_topic,
            window=timedelta(hours=hours),
            dedup=timedelta(seconds=dedup),
            stream_recommendations=(get("ONLINE_STREAM_RECOMMENDATIONS") or "1") != "0",
            stream_split=None if split is None else ab.parse_split(_pairs(split)),
            request_log_paths=tuple(p.strip() for p in (paths or "").split(",") if p.strip()),
            request_log_kafka_bootstrap=get("REQUEST_LOG_KAFKA_BOOTSTRAP"),
            request_log_kafka_topic=get("REQUEST_LOG_KAFKA_TOPIC") or d.request_log_kafka_topic,
            reference_list=None if reference is None else tuple(parse_body(reference)),
            pushgateway_url=get("PUSHGATEWAY_URL"),
            push_job=get("ONLINE_PUSH_JOB") or d.push_job,
        )


def _pairs(text: str) -> dict[str, str]:
    """``control=90,treatment=10`` -> {"control": "90", "treatment": "10"}."""
    pairs = {}
    for item in text.split(","):
        name, sep, weight = item.partition("=")
        if not sep:
            raise ValueError(f"ONLINE_STREAM_SPLIT: {item!r} is not variant=weight")
        pairs[name.strip()] = weight.strip()
    return pairs
