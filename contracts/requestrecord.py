"""The request log's record: one JSON line per ``/recommend`` request, written by the
service (``service.requestlog``) and read back by the online evaluation
(``online.logreader``). Its fields, how a line is written and how one is read all live here::

    {"time":"2025-10-17T01:33:45.122Z","user":227244,"status":200,"variant":"control",
     "version":"251017013000123","source":"personal","latency_ms":1.42,
     "result":"big+hero+6+2014,avatar+2009,..."}

``user`` is null, and ``variant``/``version``/``source`` absent, for a rejected user ID.
"""

from __future__ import annotations

import json
import math
import time as _clock
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, TypeGuard

from contracts.response import parse_body
from contracts.userid import valid_user_id

FIELD_TIME = "time"
FIELD_USER = "user"
FIELD_STATUS = "status"
FIELD_VARIANT = "variant"
FIELD_VERSION = "version"
FIELD_SOURCE = "source"
FIELD_LATENCY_MS = "latency_ms"
FIELD_RESULT = "result"
NO_LABEL = "none"  # variant/version/source of a request the service answered without a list

_encode = json.JSONEncoder().encode  # C-accelerated; escapes any odd byte in IDs or versions


class RecordFormatter:
    """Writes record lines. Written out by hand: the fields are fixed and this runs on every
    request; the free-text values go through the JSON encoder. Keeps the timestamp's
    whole-second prefix, so ``strftime`` runs once a second, not once a request."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(
        self,
        now: float,
        user_id: int | None,
        status: int,
        latency_seconds: float,
        *,
        labels: tuple[str, str, str] | None,
        result: str,
    ) -> str:
        """The JSON line (ASCII only); ``labels`` is (variant, version, source), or None for
        a request answered without a list."""
        second = int(now)
        if second != self._second:
            self._prefix = _clock.strftime("%Y-%m-%dT%H:%M:%S", _clock.gmtime(second))
            self._second = second
        stamp = f"{self._prefix}.{int((now - second) * 1000):03d}Z"
        user = "null" if user_id is None else str(user_id)
        latency = f"{latency_seconds * 1000:.3f}"
        head = f'{{"{FIELD_TIME}":"{stamp}","{FIELD_USER}":{user},"{FIELD_STATUS}":{status},'
        if labels is None:
            return f'{head}"{FIELD_LATENCY_MS}":{latency},"{FIELD_RESULT}":""}}'
        variant, version, source = labels
        return (
            f'{head}"{FIELD_VARIANT}":{_encode(variant)},'
            f'"{FIELD_VERSION}":{_encode(version)},"{FIELD_SOURCE}":{_encode(source)},'
            f'"{FIELD_LATENCY_MS}":{latency},"{FIELD_RESULT}":{_encode(result)}}}'
        )


MAX_RECORD_BYTES = 64 * 1024  # a real line (20 IDs) is well under 4 KiB
# datetime64[ns] holds years 1678..2261; anything outside is not a time this service logged.
_EARLIEST, _LATEST = datetime(1900, 1, 1), datetime(2200, 1, 1)


class Reason(StrEnum):
    """Why a line was skipped; the values are stable metric labels."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_UTF8 = "bad_utf8"
    BAD_JSON = "bad_json"
    BAD_TIME = "bad_time"
    BAD_USER = "bad_user"
    BAD_STATUS = "bad_status"
    BAD_LATENCY = "bad_latency"
    BAD_LABEL = "bad_label"
    BAD_RESULT = "bad_result"


class Request(NamedTuple):
    time: datetime  # naive UTC
    user: int | None
    status: int
    variant: str
    version: str
    source: str
    latency_ms: float
    movies: tuple[str, ...]


def parse_request_line(raw: bytes | str) -> Request | Reason:
    """One request-log line, or the reason it is not one. Never raises."""
    if len(raw) > MAX_RECORD_BYTES:
        return Reason.TOO_LONG
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Reason.BAD_UTF8
    if not raw.strip():
        return Reason.EMPTY
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return Reason.BAD_JSON
    if not isinstance(record, dict):
        return Reason.BAD_JSON
    time = _time(record.get(FIELD_TIME))
    if time is None:
        return Reason.BAD_TIME
    user = record.get(FIELD_USER)
    if user is not None and not (_is_int(user) and valid_user_id(user)):
        return Reason.BAD_USER
    status = record.get(FIELD_STATUS)
    if not (_is_int(status) and 100 <= status <= 599):
        return Reason.BAD_STATUS
    latency = record.get(FIELD_LATENCY_MS)
    if not (_is_number(latency) and 0 <= latency < math.inf):
        return Reason.BAD_LATENCY
    labels = [record.get(f, NO_LABEL) for f in (FIELD_VARIANT, FIELD_VERSION, FIELD_SOURCE)]
    if not all(isinstance(label, str) and label for label in labels):
        return Reason.BAD_LABEL
    result = record.get(FIELD_RESULT)
    if not isinstance(result, str):
        return Reason.BAD_RESULT
    movies: tuple[str, ...] = ()
    if status == 200:
        movies = tuple(parse_body(result))
        if not movies or not all(movies):
            return Reason.BAD_RESULT
    variant, version, source = labels
    return Request(time, user, status, variant, version, source, float(latency), movies)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(value: Any) -> datetime | None:
    """ISO-8601 (the service writes ``...Z``) as naive UTC; a zoneless time is taken as UTC."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        time = datetime.fromisoformat(value)
    except ValueError:
        return None
    if time.tzinfo is not None:
        try:
            time = time.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            return None
    return time if _EARLIEST <= time < _LATEST else None
