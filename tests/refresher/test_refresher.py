"""The refresher against the real broker and Redis: a new user's list turns personal after
their events; a known user's list changes and equals what precompute gives for that
history; a publish (and an A/B variant with its own model) while refreshing, with readers
never seeing a missing or mixed list and no retired version coming back; and a refresher
killed with -9 and restarted losing nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from contracts import rediskeys
from contracts.response import LIST_LENGTH, parse_body
from experiments import store as experiments
from experiments.definition import Experiment
from precompute.redisclient import connect
from refresher.refresher import Refresher
from refresher.settings import Settings
from refresher.store import MARK, write_lists
from tests.refresher.conftest import World, answer, rate, wait_for, watch

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def running(settings: Settings) -> Iterator[Refresher]:
    """A refresher in a thread of this process, stopped (and its error raised) at the end."""
    refresher = Refresher(settings)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            refresher.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield refresher
    finally:
        refresher.stop()
        thread.join(30)
    assert not thread.is_alive()
    if failure:
        raise failure[0]


def known_user(world: World, client: redis.Redis, version: str) -> tuple[int, list[str]]:
    """A user of the snapshot, their published list, and catalogue movies they never saw."""
    model = world.model("ease")
    user = int(model.user_ids[len(model.user_ids) // 3])
    body = answer(client, user, version)
    assert body is not None
    return user, body.split(",")


def unseen(world: World, listed: list[str], count: int) -> list[str]:
    return [m for m in reversed(world.catalogue) if m not in listed][:count]


def test_a_new_users_list_turns_personal_after_their_events(
    world: World, redis_url: str, client: redis.Redis
) -> None:
    version = world.publish(redis_url)
    user = 700_000_001  # nobody in the snapshot
    cold = client.get(rediskeys.default(version, user))
    movies = world.catalogue[10:13]
    with running(world.settings(redis_url)):
        assert answer(client, user) is None  # the service answers the cold-start list
        world.produce([rate(user, movies[0], 5, 1), watch(user, movies[1], 2)])
        world.produce([rate(user, movies[2], 4, 3)])
        expected = world.expected("ease", [user])[user]  # precompute's, for that history
        wait_for(lambda: expected == answer(client, user))
    body = answer(client, user)
    assert body is not None and body != cold
    listed = parse_body(body)
    assert len(listed) == LIST_LENGTH == len(set(listed)) and not set(movies) & set(listed)


def test_a_known_users_list_changes_and_equals_precompute_for_that_history(
    world: World, redis_url: str, client: redis.Redis
) -> None:
    version = world.publish(redis_url)
    user, before = known_user(world, client, version)
    other = int(world.model("ease").user_ids[-2])
    published = answer(client, other, version)
    new = unseen(world, before, 3)
    with running(world.settings(redis_url)):
        world.produce([watch(user, new[0], 1), rate(user, new[1], 5, 2), rate(user, new[2], 5, 3)])
        expected = world.expected("ease", [user, other])
        wait_for(lambda: expected[user] == answer(client, user))
    after = answer(client, user)
    assert after != ",".join(before) and not set(new) & set(after.split(","))  # type: ignore[union-attr]
    # A user with no new event: what precompute published at fit time is what folding
    # their history in gives now (and the refresher left them alone).
    assert answer(client, other) == published
    assert expected[other] == published


def test_a_publish_and_an_ab_variant_while_refreshing(
    world: World, redis_url: str, client: redis.Redis
) -> None:
    popular = world.publish(redis_url, "popularity")
    first = world.publish(redis_url)
    experiments.start(
        client,
        Experiment(
            name="refresh-ab",
            variants={"control": first, "treatment": popular},
            weights={"control": 50, "treatment": 50},
        ),
    )
    users = [int(u) for u in world.model("ease").user_ids[5:60:9]]
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        """The service's read, over and over: the active version, then one user's list and
        the cold-start list of that version; never a version without its cold-start list,
        never a malformed list."""
        reader = redis.Redis.from_url(redis_url, decode_responses=True)
        while not stop.is_set():
            active = reader.get(rediskeys.ACTIVE)
            for user in users:
                body, cold = reader.mget(
                    [rediskeys.user(active, user), rediskeys.default(active, user)]
                )
                if cold is None:
                    problems.append(f"{active}: no cold-start list")
                for listed in (body, cold):
                    if listed is not None and len(set(parse_body(listed))) != LIST_LENGTH:
                        problems.append(f"{active}: bad list {listed}")
        reader.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with running(world.settings(redis_url)):
            a, b, c = users[:3]
            world.produce([rate(a, m, 5, i) for i, m in enumerate(unseen(world, [], 2))])
            expected_a = world.expected("ease", [a])[a]
            expected_pop = world.expected("popularity", [a])[a]
            wait_for(lambda: expected_a == answer(client, a, first))
            wait_for(lambda: expected_pop == answer(client, a, popular))  # the variant's model
            experiments.stop(client)  # everyone back on the active version

            second = world.publish(redis_url)  # the switch: a's list there is the snapshot's
            wait_for(lambda: expected_a == answer(client, a, second))  # caught up
            world.produce([watch(b, m, 10 + i) for i, m in enumerate(unseen(world, [], 4)[2:])])
            expected_b = world.expected("ease", [b])[b]
            wait_for(lambda: expected_b == answer(client, b, second))
            assert expected_b != answer(client, b, first)  # no longer served: left as it was

            third = world.publish(redis_url)  # prunes `first` and `popular`: beyond KEEP_VERSIONS
            world.produce([rate(c, m, 3, 20 + i) for i, m in enumerate(unseen(world, [], 6)[4:])])
            expected_c = world.expected("ease", [c])[c]
            wait_for(lambda: expected_c == answer(client, c, third))
    finally:
        stop.set()
        reader.join(10)
    assert problems == []
    for retired in (first, popular):
        assert retired not in client.zrange(rediskeys.VERSIONS, 0, -1)
        assert list(client.scan_iter(rediskeys.version_pattern(retired))) == []  # not resurrected
        assert not client.exists(rediskeys.meta(retired))


def test_a_write_into_a_version_retired_meanwhile_is_undone(
    world: World, redis_url: str, client: redis.Redis
) -> None:
    """The store's rule, deterministically: lists and marks written for a version that is
    neither served nor published by the time the batch re-reads the routing are deleted."""
    version = world.publish(redis_url)
    with connect(world.precompute(redis_url)) as raw:
        routing, written = write_lists(
            raw,
            {version: ([1], [b"a+1999"]), "gone": ([1, 2], [b"b+1999", b"c+1999"])},
            {version: {0: 5}, "gone": {0: 7}},
        )
    assert routing.active == version and written.discarded == ["gone"]
    assert client.get(rediskeys.user(version, 1)) == "a+1999"
    assert client.hget(rediskeys.meta(version), f"{MARK}0") == "5"
    assert list(client.scan_iter(rediskeys.version_pattern("gone"))) == []
    assert not client.exists(rediskeys.meta("gone"))


def test_a_refresher_killed_with_minus_9_and_restarted_loses_nothing(
    world: World, redis_url: str, client: redis.Redis
) -> None:
    version = world.publish(redis_url)
    settings = world.settings(redis_url)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_DATA_DIR": str(world.root),
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": world.bootstrap,
        "KAFKA_TOPIC": world.topic,
        "REFRESH_KAFKA_GROUP": settings.group,
        "REFRESH_BATCH_SECONDS": "0.1",
        "REFRESH_METRICS_PORT": "0",
    }

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "refresher", "run"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    model = world.model("ease")
    d, e = int(model.user_ids[7]), 700_000_002
    first = start()
    try:
        world.produce([rate(d, m, 5, i) for i, m in enumerate(unseen(world, [], 2))])
        expected_d = world.expected("ease", [d])[d]
        wait_for(lambda: expected_d == answer(client, d))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL

    # While it is dead: more for d, and a new user.
    produced = world.produce([watch(d, unseen(world, [], 5)[4], 30)])
    produced.update(
        world.produce([rate(e, m, 4, 31 + i) for i, m in enumerate(world.catalogue[:3])])
    )
    expected = world.expected("ease", [d, e])
    assert expected[d] != answer(client, d) and answer(client, e) is None
    second = start()
    try:
        wait_for(lambda: expected[d] == answer(client, d) and expected[e] == answer(client, e))
    finally:
        second.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err.decode()[-2000:]
    assert b'"refreshed"' in out

    # Its progress: the marks in the version's metadata cover every event produced.
    marks = client.hgetall(rediskeys.meta(version))
    for partition, after in produced.items():
        assert int(marks[f"{MARK}{partition}"]) >= after


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_the_entry_point_explains_itself(argv: list[str], run_module) -> None:
    result = run_module(["-m", "refresher", *argv], check=True)
    assert "usage: python -m refresher" in result.stdout


def test_the_store_on_one_node_and_on_a_redis_cluster(redis_any) -> None:
    """The refresher's writes go through the same client kinds as publishing: on a cluster a
    batch spans many slots (users in different buckets), the routing re-read is one slot,
    and the undo of a retired version reaches every node."""
    client = redis_any
    client.set(rediskeys.ACTIVE, "v1")
    client.zadd(rediskeys.VERSIONS, {"v1": 1.0})
    users = list(range(1, 600, 7))  # about ten buckets of 64 users
    bodies = [f"m+{u}+1999".encode() for u in users]
    routing, written = write_lists(
        client, {"v1": (users, bodies), "gone": (users, bodies)}, {"v1": {0: 9}, "gone": {0: 9}}
    )
    assert routing.active == "v1" and routing.served == {"v1"}
    assert written.users == 2 * len(users) and written.discarded == ["gone"]
    assert [client.get(rediskeys.user("v1", u)) for u in users] == [b.decode() for b in bodies]
    assert client.hget(rediskeys.meta("v1"), f"{MARK}0") == "9"
    assert not any(client.exists(rediskeys.user("gone", u)) for u in users)
    assert not client.exists(rediskeys.meta("gone"))
