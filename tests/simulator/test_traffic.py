"""The traffic simulator and the MovieLens replay: grammar, realism, determinism, Kafka, CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingest.events import (
    Account,
    Rate,
    Recommendation,
    Rejected,
    Watch,
    format_event,
    is_movie_id,
    parse_line,
)
from simulator.replay import replay_events
from simulator.traffic import NOISE_KINDS, World, main, produce, simulate_lines
from training.movielens import read_ratings, slugify, to_stars

EXPECTED = {"watch": Watch, "rate": Rate, "recommendation": Recommendation, "account": Account}
START = datetime(2025, 1, 1)
DAYS = 14


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(users=500, movies=500, seed=7)


@pytest.fixture(scope="module")
def stream(world: World) -> list[tuple[str, bytes]]:
    return list(world.generate(days=DAYS, start=START, noise=0.05))


@pytest.fixture(scope="module")
def events(stream: list[tuple[str, bytes]]) -> list:
    """The clean events, parsed back from their lines."""
    return [parse_line(line) for kind, line in stream if not kind.startswith("noise:")]


def _sessions(events: list) -> list[tuple[int, str]]:
    """(user, movie) of every watch session: a session starts at minute 0."""
    return [(e.user_id, e.movie_id) for e in events if isinstance(e, Watch) and e.minute == 0]


# --- determinism ------------------------------------------------------------------------


def test_same_seed_gives_the_same_lines_and_another_seed_does_not() -> None:
    def lines(seed: int) -> list[bytes]:
        return list(simulate_lines(users=60, movies=80, days=3, seed=seed, noise=0.05))

    first = lines(1)
    assert len(first) > 1000
    assert lines(1) == first
    assert lines(2) != first


# --- grammar ----------------------------------------------------------------------------


def test_every_clean_line_parses_to_its_kind(stream: list[tuple[str, bytes]]) -> None:
    kinds = Counter(kind for kind, _ in stream)
    assert {"watch", "rate", "recommendation", "account"} <= set(kinds)
    for kind, line in stream:
        if not kind.startswith("noise:"):
            event = parse_line(line)
            assert isinstance(event, EXPECTED[kind]), (kind, line, event)
            assert format_event(event).encode() == line


def test_noise_is_rejected_except_exact_duplicates(stream: list[tuple[str, bytes]]) -> None:
    seen = Counter()
    previous = b""
    for kind, line in stream:
        if kind == "noise:duplicate":
            assert line == previous
        elif kind.startswith("noise:"):
            assert isinstance(parse_line(line), Rejected), (kind, line)
        seen[kind] += 1
        previous = line
    assert {f"noise:{what}" for what in NOISE_KINDS} <= set(seen)
    noise = sum(n for kind, n in seen.items() if kind.startswith("noise:"))
    assert noise == pytest.approx(0.05 * (len(stream) - noise), rel=0.01)
    assert any(not line.isascii() for kind, line in stream if kind == "noise:garbage")
    assert all(b"\n" not in line and b"\r" not in line for _, line in stream)


def test_no_noise_when_asked_for_none() -> None:
    kinds = {kind for kind, _ in World.build(30, 40, seed=3).generate(days=2, noise=0.0)}
    assert kinds and not any(kind.startswith("noise:") for kind in kinds)


def test_lines_are_in_time_order_within_the_window(events: list) -> None:
    times = [event.time for event in events]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < START + timedelta(days=DAYS + 1)
    assert any(t.microsecond for t in times) and any(not t.microsecond for t in times)


def test_recommendation_lines(events: list) -> None:
    served = [e for e in events if isinstance(e, Recommendation) and e.status == 200]
    failed = [e for e in events if isinstance(e, Recommendation) and e.status != 200]
    assert served and failed
    for event in served:
        assert len(event.movies) == 20 == len(set(event.movies))
        assert all(is_movie_id(movie) for movie in event.movies)
    assert all(e.status == 500 and e.error and not e.movies for e in failed)


def test_accounts_come_first_and_some_ratings_change(events: list) -> None:
    first_seen: dict[int, object] = {}
    for event in events:
        first_seen.setdefault(event.user_id, event)
    accounts = [e for e in events if isinstance(e, Account)]
    assert accounts
    assert all(first_seen[a.user_id] is a for a in accounts)
    ratings = defaultdict(list)
    for event in events:
        if isinstance(event, Rate):
            ratings[(event.user_id, event.movie_id)].append(event.rating)
    changed = [stars for stars in ratings.values() if len(set(stars)) > 1]
    assert changed
    assert all(len(stars) == 2 and abs(stars[0] - stars[1]) == 1 for stars in changed)


# --- realism ----------------------------------------------------------------------------


def test_popularity_is_zipf_like(world: World, events: list) -> None:
    watched = Counter(movie for _, movie in _sessions(events))
    top = sum(n for _, n in watched.most_common(len(world.movie_ids) // 10))
    assert top / sum(watched.values()) > 0.35  # uniform would give 0.10


def test_ratings_follow_the_hidden_affinity(world: World, events: list) -> None:
    latest = {(e.user_id, e.movie_id): e.rating for e in events if isinstance(e, Rate)}
    assert len(latest) > 300
    stars = pd.Series(list(latest.values()))
    affinity = pd.Series([world.affinity(user, movie) for user, movie in latest])
    assert stars.corr(affinity, method="spearman") > 0.3


def test_users_watch_more_of_what_they_like(world: World, events: list) -> None:
    watched = defaultdict(int)
    for event in events:
        if isinstance(event, Watch):
            watched[(event.user_id, event.movie_id)] += 1
    minutes = pd.Series(list(watched.values()))
    affinity = pd.Series([world.affinity(user, movie) for user, movie in watched])
    assert minutes.corr(affinity, method="spearman") > 0.3


def test_users_watch_different_movies(events: list) -> None:
    by_user = defaultdict(set)
    for user, movie in _sessions(events):
        by_user[user].add(movie)
    sets = [frozenset(movies) for movies in by_user.values() if len(movies) >= 3]
    assert len(sets) > 50
    assert len(set(sets)) == len(sets)
    jaccard = np.mean([len(a & b) / len(a | b) for a, b in itertools.pairwise(sets)])
    assert jaccard < 0.2


def test_affinity_matches_the_vectorised_form(world: World) -> None:
    user = int(world.user_ids[3])
    row = world.affinities(user)
    assert row.shape == (len(world.movie_ids),)
    assert world.affinity(user, world.movie_ids[5]) == pytest.approx(row[5])
    assert 0.7 < np.std(world.tastes @ world.movie_vectors.T) < 1.3


def test_movie_ids_are_unique_slugs_with_a_year(world: World) -> None:
    assert len(set(world.movie_ids)) == len(world.movie_ids)
    assert all(is_movie_id(movie) for movie in world.movie_ids)
    years = [int(movie.rsplit("+", 1)[1]) for movie in world.movie_ids]
    assert min(years) >= 1950 and max(years) <= 2025
    assert ((world.lengths >= 80) & (world.lengths <= 180)).all()


# --- MovieLens replay -------------------------------------------------------------------

RATINGS = [(196, 242, 3, 881250949), (186, 302, 4, 891717742), (22, 377, 1, 878887116)]
TITLES = {242: "Kolya (1996)", 302: "L.A. Confidential (1997)", 377: "Shining, The (1980)"}
SLUGS = {242: "kolya+1996", 302: "l+a+confidential+1997", 377: "the+shining+1980"}


def _write_movielens(folder: Path, layout: str, with_movies: bool) -> Path:
    """Tiny files in the three MovieLens layouts, ratings deliberately not in time order."""
    if layout == "u.data":
        rows = [f"{u}\t{m}\t{r}\t{t}" for u, m, r, t in RATINGS]
        movies = [f"{m}|{title}|01-Jan-1997||http://x|0|1" for m, title in TITLES.items()]
        movies_name = "u.item"
    elif layout == "ratings.dat":
        rows = [f"{u}::{m}::{r}::{t}" for u, m, r, t in RATINGS]
        movies = [f"{m}::{title}::Drama|Crime" for m, title in TITLES.items()]
        movies_name = "movies.dat"
    else:
        # Half stars: 2.5 rounds up to 3, 3.5 to 4, 0.5 to 1.
        rows = ["userId,movieId,rating,timestamp"]
        rows += [f"{u},{m},{r - 0.5},{t}" for u, m, r, t in RATINGS]
        movies = ["movieId,title,genres"]
        movies += [f'{m},"{title}",Drama' for m, title in TITLES.items()]
        movies_name = "movies.csv"
    path = folder / layout
    path.write_text("\n".join(rows) + "\n")
    if with_movies:
        (folder / movies_name).write_text("\n".join(movies) + "\n", encoding="latin-1")
    return path


@pytest.mark.parametrize("with_movies", [True, False], ids=["titles", "no-titles"])
@pytest.mark.parametrize("layout", ["u.data", "ratings.dat", "ratings.csv"])
def test_replay_reads_every_movielens_layout(
    tmp_path: Path, layout: str, with_movies: bool
) -> None:
    path = _write_movielens(tmp_path, layout, with_movies)
    frame = read_ratings(path)
    assert list(frame.columns) == ["user_id", "movie", "rating", "timestamp"]
    assert frame["user_id"].tolist() == [u for u, _, _, _ in RATINGS]
    assert frame["timestamp"].dtype == np.int64

    replayed = list(replay_events(path))
    expected = sorted(RATINGS, key=lambda row: row[3])
    assert [e.time for e in replayed] == sorted(e.time for e in replayed)
    assert [(e.user_id, e.rating) for e in replayed] == [(u, r) for u, _, r, _ in expected]
    assert replayed[0].time == datetime(1997, 11, 7, 7, 18, 36)
    names = SLUGS if with_movies else {m: f"movie+{m}+0000" for m in TITLES}
    assert [e.movie_id for e in replayed] == [names[m] for _, m, _, _ in expected]
    assert all(parse_line(format_event(e)) == e for e in replayed)


def test_half_stars_round_up() -> None:
    assert to_stars([0.5, 1.0, 2.5, 3.5, 4.0, 5.0]).tolist() == [1, 1, 3, 4, 4, 5]


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Toy Story (1995)", "toy+story+1995"),
        ("Schindler's List (1993)", "schindlers+list+1993"),
        ("Shawshank Redemption, The (1994)", "the+shawshank+redemption+1994"),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
         "the+city+of+lost+children+1995"),
        ("Se7en (a.k.a. Seven) (1995)", "se7en+1995"),
        ("unknown", "unknown+0000"),
        ("!!! (2001)", "movie+9+2001"),
    ],
)  # fmt: skip
def test_titles_become_grammar_slugs(title: str, slug: str) -> None:
    assert slugify(title, 9) == slug
    assert is_movie_id(slug)


def test_a_title_seen_twice_gets_unique_slugs(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\t20\t4\t200\n")
    (tmp_path / "u.item").write_text("10|Chasing Amy (1997)|x\n20|Chasing Amy (1997)|x\n")
    slugs = [e.movie_id for e in replay_events(tmp_path / "u.data")]
    assert slugs == ["chasing+amy+1997", "chasing+amy+20+1997"]


# --- Kafka and CLI ----------------------------------------------------------------------


def _read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    """Every record of the topic, by assignment (group joins are slow on this broker)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: list = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=50_000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_produce_into_kafka_keeps_every_line_and_each_users_order(
    bootstrap: str, topic: str
) -> None:
    lines = list(simulate_lines(users=80, movies=100, days=3, seed=11, noise=0.05))
    assert produce(lines, bootstrap, topic) == len(lines)

    records = _read_topic(bootstrap, topic, len(lines))
    assert Counter(r.value for r in records) == Counter(lines)
    assert {r.partition for r in records} == {0, 1}
    by_key = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is None or record.value.split(b",", 2)[1] == record.key
        by_key[record.key].append(record.value)
    for key, values in by_key.items():
        if key is not None:
            sent = [line for line in lines if line.split(b",", 2)[1:2] == [key]]
            assert values == sent


def test_cli_help_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator.traffic", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "--replay" in done.stdout and "--kafka" in done.stdout


def test_cli_writes_a_file_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "stream.log"
    args = ["--users", "40", "--movies", "60", "--days", "2", "--seed", "5", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "simulator.traffic", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    lines = out.read_bytes().split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == summary["lines"] == sum(summary["by_kind"].values())
    assert summary["by_kind"]["watch"] > 0 and summary["noise"] > 0
    expected = simulate_lines(users=40, movies=60, days=2, seed=5, noise=0.01)
    assert lines == list(expected)


def test_cli_replays_into_kafka(
    tmp_path: Path, bootstrap: str, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_movielens(tmp_path, "ratings.csv", with_movies=True)
    assert main(["--replay", str(path), "--kafka", bootstrap, "--topic", topic]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["by_kind"] == {"rate": 3}
    records = _read_topic(bootstrap, topic, 3)
    assert sorted(r.value for r in records) == sorted(
        format_event(e).encode() for e in replay_events(path)
    )
