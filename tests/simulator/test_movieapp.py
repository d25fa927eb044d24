"""The simulator's movie-app mode against the real service app (HTTP) and a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from werkzeug.serving import make_server

from contracts import rediskeys
from contracts.response import format_body
from devstack.servers import LOOPBACK, free_port
from ingest.events import Rate, Recommendation, Watch, parse_line
from service.app import create_app
from service.settings import Settings
from simulator.movieapp import MovieApp
from simulator.traffic import World

WORLD = World.build(300, 400, seed=3)


def true_top(user_id: int) -> list[str]:
    """The world's own best 20 for a user: what a perfect model would serve."""
    logits = WORLD.choice_logits(WORLD.affinities(user_id))
    return [WORLD.movie_ids[i] for i in np.argsort(-logits)[:20]]


def random_list(rng: np.random.Generator) -> list[str]:
    return [WORLD.movie_ids[i] for i in rng.choice(len(WORLD.movie_ids), 20, replace=False)]


@pytest.fixture
def publish_lists(publisher):
    """Publishes {user: movies} as one version named ``name``; returns the version."""

    def publish_lists(client: redis.Redis, lists: dict[int, list[str]], name: str) -> str:
        bodies = ((user, format_body(movies)) for user, movies in lists.items())
        default = format_body(WORLD.movie_ids[:20])
        return publisher.publish_bodies(
            client, bodies, default_body=default, meta={"model_version": name}, keep=5
        ).version

    return publish_lists


@pytest.fixture
def service_url(redis_url: str) -> Iterator[str]:
    """The real service app on a loopback port (werkzeug's server, one thread)."""
    settings = Settings.from_env(
        {"REDIS_URL": redis_url, "REQUEST_LOG": "off", "VERSION_REFRESH_SECONDS": "0.1"}
    )
    app = create_app(settings)
    server = make_server(LOOPBACK, free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_port}"
    server.shutdown()


def conversion(app: MovieApp, visits: int) -> float:
    return sum(v.position is not None for v in app.visits(visits)) / visits


def test_good_lists_earn_more_watches_than_random_ones(
    service_url: str, redis_client: redis.Redis, publish_lists
) -> None:
    rng = np.random.default_rng(0)
    users = WORLD.user_ids.tolist()
    good = publish_lists(redis_client, {u: true_top(u) for u in users}, "oracle")
    bad = publish_lists(redis_client, {u: random_list(rng) for u in users}, "random")
    redis_client.set(rediskeys.ACTIVE, good)
    good_rate = conversion(MovieApp(WORLD, service_url, seed=1), 300)
    redis_client.set(rediskeys.ACTIVE, bad)
    time.sleep(0.3)  # the service re-reads rec:active every VERSION_REFRESH_SECONDS
    bad_rate = conversion(MovieApp(WORLD, service_url, seed=1), 300)
    assert good_rate > 0.3 and bad_rate < 0.1, (good_rate, bad_rate)


def test_every_line_is_a_contract_line_that_tells_what_happened(
    service_url: str, redis_client: redis.Redis, publish_lists
) -> None:
    version = publish_lists(redis_client, {u: true_top(u) for u in WORLD.user_ids.tolist()}, "x")
    app = MovieApp(WORLD, service_url, seed=2)
    visits = list(app.visits(60))
    assert any(v.started for v in visits)
    for visit in visits:
        events = [parse_line(line) for line in visit.lines]
        reco, *rest = events
        assert isinstance(reco, Recommendation) and reco.status == 200
        assert list(reco.movies) == true_top(visit.user_id) and reco.user_id == visit.user_id
        assert visit.version == version and visit.variant == "control"
        watches = [e for e in rest if isinstance(e, Watch)]
        assert all(isinstance(e, Watch | Rate) for e in rest)
        if visit.started is None:
            assert not rest
            continue
        # A started movie is watched from minute 0, minute by minute, after the answer.
        assert [w.minute for w in watches] == list(range(len(watches)))
        assert {w.movie_id for w in watches} == {visit.started}
        assert watches[0].time > reco.time
        if visit.position is not None:
            assert reco.movies[visit.position - 1] == visit.started


def test_a_service_that_is_down_is_logged_as_a_failed_request(redis_client: redis.Redis) -> None:
    app = MovieApp(WORLD, f"http://{LOOPBACK}:{free_port()}", seed=0)
    visit = app.visit(int(WORLD.user_ids[0]))
    event = parse_line(visit.lines[0])
    assert isinstance(event, Recommendation)
    assert event.status == 504 and event.movies == () and "ConnectionRefused" in event.error
    assert visit.position is None  # nothing recommended, so nothing converts
