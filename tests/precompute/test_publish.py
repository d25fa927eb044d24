"""Publishing against a real Redis: atomic switch, shards, verification, rollback, crashed
publishes, a reader polling throughout, and the CLI as a scheduler would drive it. The
protocol's tests take ``redis_any``: each runs on a single node and on a Redis Cluster."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import redis

from contracts import rediskeys
from precompute import publish, versions
from precompute.publish import Published, PublishError, ShardReport
from precompute.shard import Shard
from tests.conftest import another_client


def publish_sharded(publisher, client: redis.Redis, tag: str, shards: int = 3) -> Published:
    """The Airflow shape: begin, every shard (in reverse order), finalize."""
    version = publish.begin(
        client,
        meta={"model_version": tag, "snapshot_id": f"snap-{tag}"},
        default_body=publisher.body(tag, "default"),
        users=publisher.users,
        shards=shards,
    )
    for shard in reversed(Shard.all(shards)):
        mine = [u for u in range(1, publisher.users + 1) if u % shards == shard.index]
        publish.write_shard(
            client,
            version,
            shard,
            publisher.blocks(tag, mine),
            expected=len(mine),
            model_version=tag,
            batch=16,
        )
    return publish.finalize(client, version)


def test_publish_switches_atomically_and_keeps_one_for_rollback(redis_any, publisher) -> None:
    client = redis_any
    first = publisher.publish_lists(client, "a")
    assert first.users == publisher.users
    assert versions.active(client) == first.version
    assert client.get(rediskeys.user(first.version, 42)) == publisher.body("a", 42)
    assert client.get(rediskeys.default(first.version)) == publisher.body("a", "default")
    meta = client.hgetall(rediskeys.meta(first.version))
    assert meta["model_version"] == "a"
    assert meta["snapshot_id"] == "snap-a"
    assert meta["users"] == str(publisher.users)
    assert meta["state"] == "published"
    assert meta["created_at"] <= meta["published_at"]
    assert 0 < float(meta["bytes_per_user"]) < 1000

    second = publish_sharded(publisher, client, "b")
    third = publisher.publish_lists(client, "c")
    assert versions.active(client) == third.version
    assert versions.published(client) == [second.version, third.version]
    assert third.removed == [first.version]
    assert not publisher.version_keys(client, first.version)
    assert len(publisher.user_keys(client, second.version)) == publisher.users

    assert versions.rollback(client, grace_seconds=0) == second.version
    assert versions.active(client) == second.version
    assert client.get(rediskeys.user(second.version, 42)) == publisher.body("b", 42)
    assert not publisher.version_keys(client, third.version)
    assert versions.published(client) == [second.version]
    assert not client.smembers(rediskeys.PENDING)
    with pytest.raises(PublishError, match="no previous version"):
        versions.rollback(client, grace_seconds=0)
    status = versions.status(client)
    assert status["active"] == second.version
    assert status["meta"]["model_version"] == "b"


def test_crashed_publish_leaves_active_untouched_and_is_cleaned_up(redis_any, publisher) -> None:
    client = redis_any
    good = publisher.publish_lists(client, "good")

    def exploding_bodies():
        yield from publisher.bodies("bad", range(1, 50))
        raise RuntimeError("scoring crashed mid-publish")

    with pytest.raises(RuntimeError):
        publisher.publish_bodies(
            client, exploding_bodies(), default_body="x+2000", meta={}, batch=8
        )
    assert versions.active(client) == good.version
    assert client.get(rediskeys.user(good.version, 1)) == publisher.body("good", 1)
    crashed = [v for v in versions.pending(client) if v != good.version]
    assert len(crashed) == 1
    # The crash left partial keys behind...
    assert len(publisher.user_keys(client, crashed[0])) == 48

    publisher.publish_lists(client, "next")
    kept = versions.published(client)
    leftovers = [
        key
        for key in publisher.keys(client, "rec:*")
        if rediskeys.version_of(key) not in (None, *kept)
    ]
    assert leftovers == []  # ...the next run removed them
    assert not client.smembers(rediskeys.PENDING)


def test_finalize_waits_for_every_shard_and_a_retried_shard_is_harmless(
    redis_any, publisher
) -> None:
    client = redis_any
    live = publisher.publish_lists(client, "live")
    version = publish.begin(
        client,
        meta={"model_version": "m"},
        default_body=publisher.body("m", "d"),
        users=publisher.users,
        shards=3,
    )
    shard_users = {
        s: [u for u in range(1, publisher.users + 1) if u % 3 == s.index] for s in Shard.all(3)
    }

    def write(shard: Shard, model: str = "m") -> ShardReport:
        users = shard_users[shard]
        return publish.write_shard(
            client,
            version,
            shard,
            publisher.blocks("m", users),
            expected=len(users),
            model_version=model,
        )

    write(Shard(0, 3))
    write(Shard(2, 3))
    with pytest.raises(PublishError, match=r"shards \[1\] of 3 never reported"):
        publish.finalize(client, version)
    assert versions.active(client) == live.version  # nothing switched

    write(Shard(1, 3), model="another-model")
    with pytest.raises(PublishError, match="another-model"):
        publish.finalize(client, version)
    report = write(Shard(1, 3))  # the retry overwrites the same keys
    assert report.verified == len(shard_users[Shard(1, 3)])
    done = publish.finalize(client, version)
    assert done.users == publisher.users
    assert versions.active(client) == version
    assert len(publisher.user_keys(client, version)) == publisher.users
    with pytest.raises(PublishError, match="not pending"):
        publish.finalize(client, version)


def test_finalize_refuses_a_version_that_does_not_add_up(redis_any, publisher) -> None:
    client = redis_any
    live = publisher.publish_lists(client, "live")

    def written(tag: str, planned: int, expected: int | None) -> tuple[str, ShardReport]:
        """A version begun for ``planned`` users, every user's body written as one shard."""
        version = publish.begin(client, meta={}, default_body="d+2000", users=planned)
        report = publish.write_shard(
            client,
            version,
            Shard(0, 1),
            publisher.blocks(tag, range(1, publisher.users + 1)),
            expected=expected,
            model_version="",
        )
        return version, report

    short, _ = written("s", publisher.users + 1, expected=None)
    with pytest.raises(PublishError, match=f"planned {publisher.users + 1} users"):
        publish.finalize(client, short)

    tampered, report = written("t", publisher.users, expected=publisher.users)
    client.set(rediskeys.user(tampered, int(next(iter(report.sample)))), "changed+2000")
    with pytest.raises(PublishError, match="sampled bodies"):
        publish.finalize(client, tampered)

    no_default, _ = written("n", publisher.users, expected=publisher.users)
    client.delete(rediskeys.default(no_default, 12_345))  # one copy of the 1024
    with pytest.raises(PublishError, match="cold-start"):
        publish.finalize(client, no_default)

    with pytest.raises(PublishError, match="planned 5 users, got"):
        publish.write_shard(
            client,
            no_default,
            Shard(0, 1),
            publisher.blocks("n", range(1, 9)),
            expected=5,
            model_version="",
        )
    assert versions.active(client) == live.version
    publisher.publish_lists(client, "after")
    assert not publisher.version_keys(client, short) + publisher.version_keys(client, tampered)


def test_keys_evicted_during_a_publish_are_caught(redis_client, publisher) -> None:
    client = redis_client
    live = publisher.publish_lists(client, "live")
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("maxmemory", used + 200_000)
    try:
        with pytest.raises(PublishError):  # evicted, out of memory, or keys gone
            publisher.publish_bodies(
                client,
                ((u, "x" * 200) for u in range(1, 3001)),
                default_body="d+2000",
                meta={},
                users=3000,
                batch=50,
            )
    finally:
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "noeviction")
    assert versions.active(client) in (live.version, None)  # ACTIVE itself may be evicted


def test_a_version_pinned_by_an_ab_variant_is_never_pruned(redis_any, publisher) -> None:
    client = redis_any
    pinned = publisher.publish_lists(client, "pinned")
    client.hset(rediskeys.VARIANT_VERSIONS, "treatment", pinned.version)
    for tag in ("b", "c", "d"):
        publisher.publish_lists(client, tag)
    assert len(publisher.user_keys(client, pinned.version)) == publisher.users
    client.hdel(rediskeys.VARIANT_VERSIONS, "treatment")
    assert pinned.version in publisher.publish_lists(client, "e").removed


def test_prune_keeps_a_version_pinned_while_it_was_deciding(
    redis_client, redis_url, monkeypatch, publisher
) -> None:
    """An experiment pins a version between prune's reading what is served and its
    unpublishing: the WATCH makes prune read again, so the pinned version stays whole."""
    client = redis_client
    first = publisher.publish_lists(client, "first")
    publisher.publish_lists(client, "second")
    assert first.version in versions.published(client)  # keep=1 would drop it
    read_published = versions.published
    other = redis.Redis.from_url(redis_url)  # the experiment's own connection

    def versions_then_pin(reader: redis.Redis) -> list[str]:
        found = read_published(reader)
        if not other.hexists(rediskeys.VARIANT_VERSIONS, "treatment"):
            other.hset(rediskeys.VARIANT_VERSIONS, "treatment", first.version)
        return found

    monkeypatch.setattr(versions, "published", versions_then_pin)
    assert first.version not in versions.prune(client, keep=1)
    monkeypatch.undo()
    assert first.version in versions.published(client)
    assert len(publisher.user_keys(client, first.version)) == publisher.users
    other.close()


def test_a_rolled_back_version_an_experiment_reads_is_deleted_once_it_stops(
    redis_any, publisher
) -> None:
    client = redis_any
    publisher.publish_lists(client, "base")
    bad = publisher.publish_lists(client, "bad")
    client.hset(rediskeys.VARIANT_VERSIONS, "treatment", bad.version)
    versions.rollback(client, grace_seconds=0)
    assert bad.version not in versions.published(client)
    # The variant still reads it:
    assert len(publisher.user_keys(client, bad.version)) == publisher.users
    publisher.publish_lists(client, "next")  # begin's cleanup: still pinned, still kept
    assert len(publisher.user_keys(client, bad.version)) == publisher.users

    client.hdel(rediskeys.VARIANT_VERSIONS, "treatment")  # the experiment stopped
    publisher.publish_lists(client, "after")
    assert not publisher.user_keys(client, bad.version)
    assert not publisher.version_keys(client, bad.version)
    assert bad.version not in versions.pending(client)


def test_concurrent_reader_never_sees_a_missing_empty_or_mixed_answer(redis_any, publisher) -> None:
    """A reader doing what the service does (GET the active pointer, then one MGET of the
    user's and the default key of that version) polls throughout one-shot publishes, sharded
    publishes, pruning and a rollback. Every answer must be whole and of one version. On a
    cluster too: the MGET's two keys share a slot, the switch is one key."""
    writer = redis_any
    publisher.publish_lists(writer, "t0")
    stop = threading.Event()
    problems: list[str] = []
    seen_versions: set[str] = set()
    reads = [0]

    def read() -> None:
        client = another_client(writer)
        tags: dict[str, str] = {}
        rnd = random.Random(0)
        while not stop.is_set() and len(problems) < 10:
            version = client.get(rediskeys.ACTIVE)
            user = rnd.randint(1, publisher.users)
            got_user, got_default = client.mget(
                rediskeys.user(version, user), rediskeys.default(version, user)
            )
            if version not in tags:
                tags[version] = client.hget(rediskeys.meta(version), "model_version")
            tag = tags[version]
            body = publisher.body
            if got_user != body(tag, user) or got_default != body(tag, "default"):
                problems.append(f"{version} ({tag}) user {user}: {got_user!r} / {got_default!r}")
            seen_versions.add(version)
            reads[0] += 1
        client.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 7):
            if n % 2:
                publish_sharded(publisher, writer, f"t{n}")
            else:
                publisher.publish_lists(writer, f"t{n}")
        versions.rollback(writer, grace_seconds=0.3)
        publisher.publish_lists(writer, "t7")
    finally:
        stop.set()
        reader.join(timeout=30)
    assert problems == []
    assert reads[0] > 100
    assert len(seen_versions) >= 4  # the reader really lived through the switches


# --- the CLI, on a real snapshot and model -------------------------------------------------


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A data dir with a snapshot of a small simulated stream and an SVD trained on it."""
    from ingest.events import parse_line
    from ingest.journal import Journal, SegmentBuilder
    from ingest.snapshot import SnapshotStore
    from simulator.traffic import World
    from training.settings import Settings as TrainingSettings
    from training.train import train

    journal = Journal(tmp_path, "movielog")
    builder = SegmentBuilder(0)
    for offset, (_, line) in enumerate(World.build(users=150, movies=120, seed=4).generate(6)):
        builder.add(offset, parse_line(line), line)
    journal.write(builder)
    SnapshotStore(tmp_path).cut(journal)
    train("svd", None, TrainingSettings(data_dir=tmp_path, svd_epochs=3))
    return tmp_path


def cli(capsys, *argv: str) -> dict:
    from precompute.__main__ import main

    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_sharded_run_matches_one_process_and_rolls_back(
    trained: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from precompute.bodies import user_bodies
    from precompute.steps import Inputs

    monkeypatch.setenv("RECSYS_DATA_DIR", str(trained))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ROLLBACK_GRACE_SECONDS", "0")
    monkeypatch.setenv("PRECOMPUTE_BLOCK_SIZE", "37")
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    begun = cli(capsys, "begin", "--shards", "3")
    version = begun["version"]
    for i in (2, 0, 1):
        report = cli(capsys, "write-shard", "--shard", f"{i}/3", "--version", version)
        assert report["users"] == report["verified"] > 0
    assert versions.active(client) is None  # nothing served before finalize
    assert cli(capsys, "finalize", "--version", version)["version"] == version

    from precompute.settings import Settings

    inputs = Inputs.load(Settings.from_env(), begun["model_version"])
    expected = {u: b.decode() for u, b in user_bodies(inputs.model, inputs.data)}
    stored = client.mget([rediskeys.user(version, u) for u in expected])
    assert dict(zip(expected, stored, strict=True)) == expected
    users = np.asarray(list(expected))
    assert len(users) == inputs.data.n_users

    status = cli(capsys, "status")
    assert status["active"] == version
    assert status["meta"]["model_version"] == begun["model_version"]
    assert status["meta"]["snapshot_id"] == inputs.meta.snapshot_id
    assert int(status["meta"]["users"]) == len(users)

    whole = cli(capsys, "publish")
    assert whole["users"] == len(users)
    assert whole["bytes_per_user"] > 0
    assert client.mget([rediskeys.user(whole["version"], u) for u in expected]) == stored
    assert cli(capsys, "rollback") == {"active": version}
    assert versions.active(client) == version
    client.close()


def test_cli_help_and_refusals(capsys) -> None:
    from precompute.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "finalize" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["write-shard", "--shard", "0/2"])  # a shard needs the version begun for it
