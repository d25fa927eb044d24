"""The event grammar: the one place that knows what a stream line looks like.

Every reader (the consumer, the MovieLens replay, the evaluation of online logs) and every
writer (the simulator, the service's request log) goes through this module, so a change to
the contract is a change here and nowhere else.

Contract lines (``../shared/CONTRACT.md``)::

    <time>,<userid>,GET /data/m/<movieid>/<minute>.mpg
    <time>,<userid>,GET /rate/<movieid>=<rating>
    <time>,<userid>,recommendation request <server>, status <code>, result: <recs>, <N> ms
    <time>,<userid>,GET /create_account

``parse_line`` never raises: anything that is not one of these comes back as ``Rejected``
with a machine-readable reason, so a dirty stream can be counted and quarantined, not crash.
"""

from __future__ import annotations

import re
import time as _clock
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from contracts.userid import MAX_USER_ID

MAX_LINE_BYTES = 64 * 1024
MAX_MINUTE = 1000  # longest plausible feature film, in minutes
FUTURE_SLACK = timedelta(days=1)  # clock skew we tolerate before calling a time "future"

# Title words may hold letters, digits and light punctuation; never separators of the
# surrounding formats (space, comma, slash, '+', '=', control characters).
_WORD = r"[^\s,/+=\x00-\x1f\x7f]+"
MOVIE_ID_PATTERN = rf"(?:{_WORD}\+)+\d{{4}}"
_MOVIE_ID = re.compile(MOVIE_ID_PATTERN)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")
_USER = re.compile(r"[1-9]\d{0,18}")
_WATCH = re.compile(rf"GET /data/m/({MOVIE_ID_PATTERN})/([^/]*)\.mpg")
_MINUTE = re.compile(r"\d{1,6}")
_RATE = re.compile(rf"GET /rate/({MOVIE_ID_PATTERN})=(\d{{1,3}})")
_RECO = re.compile(r"recommendation request (\S+), status (\d{3}), result: (.*), (\d{1,9}) ms")
_ACCOUNT = "GET /create_account"
# The whole of a watch or rate line (nearly all of the stream) in one match, built from the
# very patterns above so that it accepts nothing they would not; see ``_parse_fast``.
_FAST = re.compile(
    rf"({_TIME.pattern}),({_USER.pattern}),(?:"
    rf"GET /data/m/({MOVIE_ID_PATTERN})/({_MINUTE.pattern})\.mpg"
    rf"|GET /rate/({MOVIE_ID_PATTERN})=(\d{{1,3}}))"
)


class Reason(StrEnum):
    """Why a line was rejected; the values are stable metric labels."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    BAD_UTF8 = "bad_utf8"
    BAD_FIELDS = "bad_fields"
    BAD_TIME = "bad_time"
    FUTURE_TIME = "future_time"
    BAD_USER = "bad_user"
    UNKNOWN_KIND = "unknown_kind"
    BAD_MOVIE = "bad_movie"
    BAD_MINUTE = "bad_minute"
    BAD_RATING = "bad_rating"
    BAD_RECOMMENDATION = "bad_recommendation"


@dataclass(frozen=True, slots=True)
class RatingScale:
    """Inclusive range of valid star ratings (the contract allows 1..5 or 1..10)."""

    low: int = 1
    high: int = 5

    def __contains__(self, rating: int) -> bool:
        return self.low <= rating <= self.high


DEFAULT_SCALE = RatingScale()


@dataclass(frozen=True, slots=True)
class Watch:
    time: datetime
    user_id: int
    movie_id: str
    minute: int


@dataclass(frozen=True, slots=True)
class Rate:
    time: datetime
    user_id: int
    movie_id: str
    rating: int


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A served recommendation as logged by the stream; ``movies`` is empty on failure."""

    time: datetime
    user_id: int
    server: str
    status: int
    movies: tuple[str, ...]
    error: str | None
    latency_ms: int


@dataclass(frozen=True, slots=True)
class Account:
    time: datetime
    user_id: int


Event = Watch | Rate | Recommendation | Account


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str


def parse_line(
    raw: bytes | str,
    *,
    scale: RatingScale = DEFAULT_SCALE,
    now: datetime | None = None,
) -> Event | Rejected:
    """Parse one stream line into a typed event, or say why it is not one."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            return Rejected(Reason.TOO_LONG, f"{len(raw)} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(Reason.BAD_UTF8, str(exc))
    else:
        line = raw
        if len(line) > MAX_LINE_BYTES:
            return Rejected(Reason.TOO_LONG, f"{len(line)} characters")
    line = line.rstrip("\r\n")
    fast = _FAST.fullmatch(line)
    if fast is not None:
        event = _parse_fast(fast, scale, now)
        if event is not None:
            return event
    return _parse_fields(line, scale, now)


def _parse_fast(match: re.Match, scale: RatingScale, now: datetime | None) -> Event | None:
    """A watch or rate line that passes every rule, or None: then ``_parse_fields`` decides.

    Only ever says yes, and only where the field-by-field path says the same: the pattern is
    theirs, concatenated (times and user ids hold no comma, movie ids no '/' or '=', so the
    groups are the fields that path would split out), and the checks below are theirs.
    """
    time_text, user_text, movie, minute_text, rated, rating_text = match.groups()
    try:
        time = datetime.fromisoformat(time_text)
    except ValueError:
        return None
    if _is_future(time, now):
        return None
    user_id = int(user_text)
    if user_id > MAX_USER_ID:
        return None
    if movie is not None:
        minute = int(minute_text)
        return Watch(time, user_id, movie, minute) if minute <= MAX_MINUTE else None
    rating = int(rating_text)
    return Rate(time, user_id, rated, rating) if rating in scale else None


def _parse_fields(line: str, scale: RatingScale, now: datetime | None) -> Event | Rejected:
    """Field by field, so that a line that is not an event says which rule it breaks."""
    if not line.strip():
        return Rejected(Reason.EMPTY, "")
    parts = line.split(",", 2)
    if len(parts) != 3:
        return Rejected(Reason.BAD_FIELDS, "expected <time>,<userid>,<request>")
    time_text, user_text, request = parts

    if not _TIME.fullmatch(time_text):
        return Rejected(Reason.BAD_TIME, time_text[:64])
    try:
        time = datetime.fromisoformat(time_text)
    except ValueError as exc:
        return Rejected(Reason.BAD_TIME, str(exc))
    if _is_future(time, now):
        return Rejected(Reason.FUTURE_TIME, time_text)

    user_id = int(user_text) if _USER.fullmatch(user_text) else 0
    if not 0 < user_id <= MAX_USER_ID:
        return Rejected(Reason.BAD_USER, user_text[:64])

    if request.startswith("GET /data/m/"):
        return _parse_watch(time, user_id, request)
    if request.startswith("GET /rate/"):
        return _parse_rate(time, user_id, request, scale)
    if request.startswith("recommendation request "):
        return _parse_recommendation(time, user_id, request)
    if request == _ACCOUNT:
        return Account(time, user_id)
    return Rejected(Reason.UNKNOWN_KIND, request[:64])


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# (wall clock in ns, read just after; _utcnow() + FUTURE_SLACK): the last bound computed.
_future_bound: tuple[float, datetime] = (float("inf"), datetime.min)


def _is_future(time: datetime, now: datetime | None) -> bool:
    """``time > (now or _utcnow()) + FUTURE_SLACK``, without building "now" for every line.

    Building it (an aware datetime, made naive) costs more than the rest of a line's checks.
    A bound computed earlier is never above the current one while the wall clock has not gone
    back since it was read, so a time at or below it is not in the future; anything else (a
    time above it, a clock that stepped back, the first call) compares against a freshly read
    clock, exactly as before.
    """
    global _future_bound  # noqa: PLW0603 - one tuple, replaced whole: safe across threads
    if now is not None:
        return time > now + FUTURE_SLACK
    read_at, bound = _future_bound
    if time <= bound and _clock.time_ns() >= read_at:
        return False
    bound = _utcnow() + FUTURE_SLACK
    _future_bound = (_clock.time_ns(), bound)
    return time > bound


def _parse_watch(time: datetime, user_id: int, request: str) -> Watch | Rejected:
    match = _WATCH.fullmatch(request)
    if match is None:
        return Rejected(Reason.BAD_MOVIE, request[:128])
    minute_text = match.group(2)
    if not _MINUTE.fullmatch(minute_text) or int(minute_text) > MAX_MINUTE:
        return Rejected(Reason.BAD_MINUTE, minute_text[:32])
    minute = int(minute_text)
    return Watch(time, user_id, match.group(1), minute)


def _parse_rate(time: datetime, user_id: int, request: str, scale: RatingScale) -> Rate | Rejected:
    match = _RATE.fullmatch(request)
    if match is None:
        # Tell a bad rating from a bad movie: the part after '=' is what makes it a rating.
        movie, sep, rating_text = request.removeprefix("GET /rate/").rpartition("=")
        if sep and _MOVIE_ID.fullmatch(movie):
            return Rejected(Reason.BAD_RATING, rating_text[:32])
        return Rejected(Reason.BAD_MOVIE, request[:128])
    rating = int(match.group(2))
    if rating not in scale:
        return Rejected(Reason.BAD_RATING, str(rating))
    return Rate(time, user_id, match.group(1), rating)


def _parse_recommendation(time: datetime, user_id: int, request: str) -> Recommendation | Rejected:
    match = _RECO.fullmatch(request)
    if match is None:
        return Rejected(Reason.BAD_RECOMMENDATION, request[:128])
    server, status_text, result, latency = match.groups()
    status = int(status_text)
    if status == 200:
        movies = tuple(result.split(", "))
        if not all(_MOVIE_ID.fullmatch(m) for m in movies):
            return Rejected(Reason.BAD_RECOMMENDATION, result[:128])
        return Recommendation(time, user_id, server, status, movies, None, int(latency))
    return Recommendation(time, user_id, server, status, (), result, int(latency))


def is_movie_id(text: str) -> bool:
    return _MOVIE_ID.fullmatch(text) is not None


def format_time(time: datetime) -> str:
    """ISO-8601 without zone, with microseconds only when there are some.

    The stream carries up to nanoseconds; ``datetime`` keeps microseconds, so parsing
    truncates the last three digits (harmless: events are ordered by offset, not time).
    """
    return time.isoformat(timespec="microseconds" if time.microsecond else "seconds")


def format_event(event: Event) -> str:
    """The contract line for an event; ``parse_line(format_event(e)) == e``."""
    head = f"{format_time(event.time)},{event.user_id},"
    match event:
        case Watch():
            return f"{head}GET /data/m/{event.movie_id}/{event.minute}.mpg"
        case Rate():
            return f"{head}GET /rate/{event.movie_id}={event.rating}"
        case Recommendation():
            result = ", ".join(event.movies) if event.status == 200 else (event.error or "")
            return (
                f"{head}recommendation request {event.server}, status {event.status}, "
                f"result: {result}, {event.latency_ms} ms"
            )
        case Account():
            return f"{head}{_ACCOUNT}"
    raise TypeError(f"not an event: {event!r}")
