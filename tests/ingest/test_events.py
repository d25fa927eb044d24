"""The event grammar: contract examples, every rejection reason, and property-based tests."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.events import (
    MAX_LINE_BYTES,
    Account,
    Rate,
    RatingScale,
    Reason,
    Recommendation,
    Rejected,
    Watch,
    format_event,
    is_movie_id,
    parse_line,
)

NOW = datetime(2026, 1, 1)


def parse(line: str | bytes, **kw) -> object:
    return parse_line(line, now=NOW, **kw)


def test_contract_examples() -> None:
    assert parse("2025-10-17T01:38:54,220358,GET /data/m/padre+nuestro+2007/90.mpg") == Watch(
        datetime(2025, 10, 17, 1, 38, 54), 220358, "padre+nuestro+2007", 90
    )
    assert parse("2025-10-17T01:38:54.122692921,220358,GET /rate/padre+nuestro+2007=4") == Rate(
        datetime(2025, 10, 17, 1, 38, 54, 122692), 220358, "padre+nuestro+2007", 4
    )
    reco = parse(
        "2025-10-17T01:33:45.122692921,227244,recommendation request "
        "17645-team08.isri.cmu.edu:8082, status 200, result: big+hero+6+2014, avatar+2009, "
        "the+matrix+1999, 25 ms"
    )
    assert reco == Recommendation(
        datetime(2025, 10, 17, 1, 33, 45, 122692),
        227244,
        "17645-team08.isri.cmu.edu:8082",
        200,
        ("big+hero+6+2014", "avatar+2009", "the+matrix+1999"),
        None,
        25,
    )
    assert parse("2025-10-17T01:38:54,7,GET /create_account") == Account(
        datetime(2025, 10, 17, 1, 38, 54), 7
    )


def test_failed_recommendation_keeps_the_error() -> None:
    event = parse(
        "2025-10-17T01:33:45,5,recommendation request host:8082, status 500, "
        "result: java.net.ConnectException: Connection refused, 800 ms"
    )
    assert isinstance(event, Recommendation)
    assert event.status == 500
    assert event.movies == ()
    assert event.error == "java.net.ConnectException: Connection refused"
    assert event.latency_ms == 800


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", Reason.EMPTY),
        (b"   \n", Reason.EMPTY),
        (b"x" * (MAX_LINE_BYTES + 1), Reason.TOO_LONG),
        (b"2025-10-17T01:38:54,1,GET /rate/a+2000=\xff", Reason.BAD_UTF8),
        ("garbage", Reason.BAD_FIELDS),
        ("2025-10-17T01:38:54,220358", Reason.BAD_FIELDS),
        ("2025-13-17T01:38:54,1,GET /create_account", Reason.BAD_TIME),
        ("17/10/2025,1,GET /create_account", Reason.BAD_TIME),
        ("2031-01-01T00:00:00,1,GET /create_account", Reason.FUTURE_TIME),
        ("2025-10-17T01:38:54,0,GET /create_account", Reason.BAD_USER),
        ("2025-10-17T01:38:54,-5,GET /create_account", Reason.BAD_USER),
        ("2025-10-17T01:38:54,abc,GET /create_account", Reason.BAD_USER),
        ("2025-10-17T01:38:54,99999999999999999999,GET /create_account", Reason.BAD_USER),
        ("2025-10-17T01:38:54,1,POST /login", Reason.UNKNOWN_KIND),
        ("2025-10-17T01:38:54,1,GET /data/m/no-year/3.mpg", Reason.BAD_MOVIE),
        ("2025-10-17T01:38:54,1,GET /data/m/heat+1995/3", Reason.BAD_MOVIE),
        ("2025-10-17T01:38:54,1,GET /data/m/heat+1995/5000.mpg", Reason.BAD_MINUTE),
        ("2025-10-17T01:38:54,1,GET /data/m/heat+1995/-3.mpg", Reason.BAD_MINUTE),
        ("2025-10-17T01:38:54,1,GET /data/m/heat+1995/12345678.mpg", Reason.BAD_MINUTE),
        ("2025-10-17T01:38:54,1,GET /rate/heat+1995=7", Reason.BAD_RATING),
        ("2025-10-17T01:38:54,1,GET /rate/heat+1995=0", Reason.BAD_RATING),
        ("2025-10-17T01:38:54,1,GET /rate/heat+1995=x", Reason.BAD_RATING),
        ("2025-10-17T01:38:54,1,GET /rate/heat=4", Reason.BAD_MOVIE),
        (
            "2025-10-17T01:38:54,1,recommendation request h, status 200, result: x",
            Reason.BAD_RECOMMENDATION,
        ),
        (
            "2025-10-17T01:38:54,1,recommendation request h, status 200, result: not a movie, 3 ms",
            Reason.BAD_RECOMMENDATION,
        ),
    ],
)
def test_rejections(line: str | bytes, reason: Reason) -> None:
    result = parse(line)
    assert isinstance(result, Rejected), result
    assert result.reason == reason


def test_rating_scale_is_configurable() -> None:
    line = "2025-10-17T01:38:54,1,GET /rate/heat+1995=9"
    assert isinstance(parse(line), Rejected)
    assert parse(line, scale=RatingScale(1, 10)).rating == 9


# --- property-based ------------------------------------------------------------------------

words = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F),
    min_size=1,
    max_size=8,
)
movie_ids = st.builds(
    lambda ws, year: "+".join([*ws, str(year)]),
    st.lists(words, min_size=1, max_size=5),
    st.integers(1900, 2030),
)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2025, 12, 31))
users = st.integers(1, 2**63 - 1)
events = st.one_of(
    st.builds(Watch, times, users, movie_ids, st.integers(0, 1000)),
    st.builds(Rate, times, users, movie_ids, st.integers(1, 5)),
    st.builds(Account, times, users),
    st.builds(
        lambda t, u, server, movies, latency: Recommendation(
            t, u, server, 200, tuple(movies), None, latency
        ),
        times,
        users,
        st.from_regex(r"[a-z0-9.-]{1,20}:[0-9]{2,5}", fullmatch=True),
        st.lists(movie_ids, min_size=1, max_size=20),
        st.integers(0, 10**6),
    ),
)


@given(events)
def test_format_then_parse_round_trips(event: object) -> None:
    line = format_event(event)
    assert parse(line) == event
    assert parse(line.encode()) == event


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse(raw)
    assert isinstance(result, Watch | Rate | Recommendation | Account | Rejected)


@given(events, st.data())
def test_truncated_lines_are_rejected(event: object, data: st.DataObject) -> None:
    line = format_event(event)
    cut = data.draw(st.integers(0, len(line) - 1))
    assert isinstance(parse(line[:cut]), Rejected)


@given(movie_ids)
def test_generated_movie_ids_are_valid(movie_id: str) -> None:
    assert is_movie_id(movie_id)
    assert not is_movie_id(movie_id.replace("+", ",", 1))
