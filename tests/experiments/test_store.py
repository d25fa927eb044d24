"""Experiments in Redis (``experiments.store``), against a real Redis and read back the
way the service reads them: start, change the split, stop; refusals write nothing; a version
a running experiment uses survives pruning."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from contracts import ab, rediskeys
from experiments import store
from experiments.__main__ import main
from experiments.definition import DefinitionError, Experiment
from precompute import versions

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def keyspace(url: str) -> dict[bytes, bytes]:
    """Every key with its serialized value: equal before and after means nothing written."""
    raw = redis.Redis.from_url(url)
    try:
        return {key: raw.dump(key) for key in raw.keys("*")}
    finally:
        raw.close()


def draft(**changes) -> Experiment:
    fields = {
        "name": "exp1",
        "variants": {"control": "v1", "treatment": "v2"},
        "weights": {"control": 90, "treatment": 10},
    }
    return Experiment(**{**fields, **changes})


BOTH = ["--variant", "control=v1", "--variant", "treatment=v2"]


def test_experiment_keys_are_control_keys_so_no_version_cleanup_matches_them() -> None:
    """In the control keys' slot (one transaction with the split on a cluster), and never
    matched by a version's cleanup pattern."""
    for key in (rediskeys.EXPERIMENT, rediskeys.EXPERIMENTS):
        assert key_slot(key.encode()) == key_slot(rediskeys.SPLIT.encode())
        for version in ("experiment", "experiments", "ctl"):
            assert not fnmatch.fnmatchcase(key, rediskeys.version_pattern(version))


def test_an_experiment_starts_pins_and_stops_on_a_redis_cluster(
    cluster_client: RedisCluster, publisher
) -> None:
    """The store's transactions on Redis Cluster; a pinned version survives the prunes."""
    pinned = publisher.publish_lists(cluster_client, "pinned")
    now = publisher.publish_lists(cluster_client, "now")
    variants = {"control": now.version, "treatment": pinned.version}
    assert store.start(cluster_client, draft(variants=variants)).name == "exp1"
    assert cluster_client.hgetall(rediskeys.VARIANT_VERSIONS)["treatment"] == pinned.version
    store.change_split(cluster_client, {"control": 50, "treatment": 50})
    assert cluster_client.hgetall(rediskeys.SPLIT) == {"control": "50", "treatment": "50"}
    for tag in ("b", "c"):
        publisher.publish_lists(cluster_client, tag)
    assert len(publisher.user_keys(cluster_client, pinned.version)) == publisher.users
    store.stop(cluster_client)
    assert cluster_client.exists(rediskeys.SPLIT, rediskeys.VARIANT_VERSIONS) == 0
    publisher.publish_lists(cluster_client, "after")
    assert publisher.version_keys(cluster_client, pinned.version) == []


def test_start_change_and_stop_as_the_service_reads_them(
    published: redis.Redis, redis_url: str
) -> None:
    client = published
    started = store.start(client, draft(), now=T0)
    assert started.status == "running" and started.started_at == T0
    raw = redis.Redis.from_url(redis_url)  # the service's client: bytes, not decoded
    split = ab.parse_split(raw.hgetall(rediskeys.SPLIT))
    assert split.variants == ("control", "treatment")
    shares = pd.Series([split.assign(u) for u in range(1, 20_001)]).value_counts(normalize=True)
    assert abs(shares["treatment"] - 0.10) < 0.01
    assert client.hgetall(rediskeys.VARIANT_VERSIONS) == {"control": "v1", "treatment": "v2"}
    assert store.status(client)["live_matches_definition"] is True

    with pytest.raises(store.RefusedError, match="running"):
        store.start(client, draft(name="exp2"))
    changed = store.change_split(client, {"control": 50, "treatment": 50}, now=T0 + timedelta(1))
    assert client.hgetall(rediskeys.SPLIT) == {"control": "50", "treatment": "50"}
    assert [c.weights["treatment"] for c in changed.history] == [10, 50]
    with pytest.raises(DefinitionError):
        store.change_split(client, {"control": 50})  # a variant left out
    with pytest.raises(store.RefusedError, match="not other"):
        store.change_split(client, {"control": 1, "treatment": 1}, name="other")
    assert client.hgetall(rediskeys.SPLIT) == {"control": "50", "treatment": "50"}

    stopped = store.stop(client, now=T0 + timedelta(days=2))
    assert stopped is not None and stopped.status == "stopped"
    assert raw.hgetall(rediskeys.SPLIT) == {} and raw.hgetall(rediskeys.VARIANT_VERSIONS) == {}
    assert ab.parse_split(raw.hgetall(rediskeys.SPLIT)) == ab.EVERYONE_IN_CONTROL
    assert store.running(client) is None
    kept = store.load(client, "exp1")
    assert kept == stopped and kept.stopped_at == T0 + timedelta(days=2)
    assert store.stop(client) is None  # stopping twice is harmless
    with pytest.raises(store.RefusedError, match="used before"):
        store.start(client, draft())
    assert store.start(client, draft(name="exp2")).status == "running"
    raw.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "control=v1", "--variant", "treatment=v9"], "not published"),
        (["--variant", "control=v1", "--variant", "Treatment=v2"], "bad variant name"),
        ([*BOTH, "--weight", "control=0", "--weight", "treatment=0"], "every weight is 0"),
        ([*BOTH, "--weight", "control=1", "--weight", "treatment=0.5"], "integer"),
        (["--variant", "treatment=v2", "--variant", "other=v3"], "control"),
    ],
)
def test_an_invalid_start_is_refused_with_nothing_written(
    cli_redis: str, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    before = keyspace(cli_redis)
    assert main(["start", "exp1", *argv]) == 1
    assert message in capsys.readouterr().err
    assert keyspace(cli_redis) == before


def test_a_split_set_by_hand_blocks_a_start_until_stop_clears_it(published: redis.Redis) -> None:
    published.hset(rediskeys.SPLIT, mapping={"control": 1, "manual": 1})
    with pytest.raises(store.RefusedError, match="outside an experiment"):
        store.start(published, draft())
    assert store.stop(published) is None
    assert published.exists(rediskeys.SPLIT) == 0
    assert store.start(published, draft()).status == "running"


def test_a_version_pinned_by_a_running_experiment_survives_pruning_until_it_stops(
    redis_client: redis.Redis, publisher
) -> None:
    old = publisher.publish_lists(redis_client, "old")
    new = publisher.publish_lists(redis_client, "new")
    store.start(redis_client, draft(variants={"control": new.version, "treatment": old.version}))
    for tag in ("b", "c"):
        publisher.publish_lists(redis_client, tag)  # keep=2 would prune "old" if nothing pinned it
    assert publisher.user_keys(redis_client, old.version)
    store.stop(redis_client)
    assert old.version in publisher.publish_lists(redis_client, "d").removed
    assert old.version not in versions.published(redis_client)
