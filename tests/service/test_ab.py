"""A/B routing: the stable assignment itself, then the split and per-variant versions read
from a real Redis, in process and across the workers of a real gunicorn."""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from redis.crc import key_slot

from contracts import ab, rediskeys, response

USERS = range(1, 201)
Bodies = tuple[dict[int, str], dict[int, str]]  # control's and treatment's, by user


# --- the assignment -----------------------------------------------------------------------


def test_buckets_are_pinned_and_independent_of_the_process(
    run_module: Callable[..., Any],
) -> None:
    """Golden values: a change here silently moves users between variants mid-experiment.
    A fresh interpreter with another hash seed agrees (Python's hash() would not)."""
    expected = [8788, 8652, 3984, 9780]
    users = [1, 2, 220358, 2**63 - 1]
    assert [ab.bucket(u) for u in users] == expected
    code = f"from contracts import ab; print([ab.bucket(u) for u in {users}])"
    for seed in ("1", "2"):
        out = run_module(["-c", code], {"PYTHONHASHSEED": seed}, check=True)
        assert out.stdout.strip() == str(expected)


def test_split_shares_follow_the_weights() -> None:
    split = ab.parse_split({b"control": b"70", b"treatment": b"20", b"zz-holdout": b"10"})
    counts = Counter(split.assign(u) for u in range(1, 30_001))
    assert set(counts) == {"control", "treatment", "zz-holdout"}
    for variant, share in [("control", 0.7), ("treatment", 0.2), ("zz-holdout", 0.1)]:
        assert abs(counts[variant] / 30_000 - share) < 0.015


def test_ramping_up_only_moves_users_into_the_growing_variant() -> None:
    before = ab.parse_split({"control": "90", "treatment": "10"})
    after = ab.parse_split({"control": "80", "treatment": "20"})
    moved = Counter((before.assign(u), after.assign(u)) for u in range(1, 20_001))
    assert moved[("treatment", "control")] == 0
    assert moved[("control", "treatment")] > 0
    assert moved[("treatment", "treatment")] > 0


def test_no_split_is_everyone_in_control_and_weight_zero_is_nobody() -> None:
    assert ab.parse_split({}) == ab.EVERYONE_IN_CONTROL
    assert ab.EVERYONE_IN_CONTROL.assign(12345) == ab.DEFAULT_VARIANT
    split = ab.parse_split({"control": "0", "treatment": "1"})
    assert split.variants == ("treatment",)
    assert {split.assign(u) for u in range(1, 1000)} == {"treatment"}


@pytest.mark.parametrize(
    "raw",
    [
        {"control": "-1", "treatment": "1"},
        {"control": "1.5"},
        {"control": "ten"},
        {"Control": "1"},
        {"a b": "1"},
        {"x" * 33: "1"},
        {"control": "0", "treatment": "0"},
        {"control": "٣"},  # a digit to str.isdigit(), not to an operator
    ],
)
def test_bad_splits_are_refused_whole(raw: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ab.parse_split(raw)


def test_the_service_wide_keys_share_one_slot_and_no_version_cleanup_matches_them() -> None:
    """precompute deletes a version with SCAN rec:{<version>:*; the service-wide keys, the
    A/B ones included, must never match that, whatever (valid) name the version has; and they
    share one hash slot, so the service reads them in one transaction on Redis Cluster."""
    control = (
        rediskeys.ACTIVE,
        rediskeys.VERSIONS,
        rediskeys.PENDING,
        rediskeys.SPLIT,
        rediskeys.VARIANT_VERSIONS,
        rediskeys.EXPERIMENT,
        rediskeys.EXPERIMENTS,
        rediskeys.meta("v1"),
    )
    assert len({key_slot(key.encode()) for key in control}) == 1
    for key in control:
        for version in ("active", "split", "ctl", "v1", "variant_versions", "rec"):
            assert rediskeys.valid_version(version)
            assert not fnmatch.fnmatchcase(key, rediskeys.version_pattern(version))
    for bad in ("*", "a:b", "{ctl}", "a b", "[x]"):
        assert not rediskeys.valid_version(bad)


# --- through the store, real Redis ----------------------------------------------------------


@pytest.fixture
def experiment(service: Any) -> Bodies:
    """An experiment on the ``service`` kit's Redis: v1 is active (control reads it), v2 is
    published for the treatment only; both versions' bodies by user."""
    control = service.publish("v1", {u: f"one{u}" for u in USERS}, "pop1")
    treatment = service.publish("v2", {u: f"two{u}" for u in USERS}, "pop2", activate=False)
    service.redis.hset(rediskeys.VARIANT_VERSIONS, "treatment", "v2")
    service.redis.hset(rediskeys.SPLIT, mapping={"control": 50, "treatment": 50})
    return control, treatment


def test_each_variant_reads_its_own_version_and_the_split_changes_without_redeploy(
    service: Any, experiment: Bodies
) -> None:
    control, treatment = experiment
    refresh = 0.3
    client = service.client(version_refresh_seconds=refresh)

    seen = Counter()
    for user in USERS:
        resp = client.get(f"/recommend/{user}")
        variant = ab.parse_split({"control": "50", "treatment": "50"}).assign(user)
        assert resp.headers["X-AB-Variant"] == variant
        expected = control if variant == "control" else treatment
        assert resp.data == expected[user].encode()
        assert resp.headers["X-Model-Version"] == ("v1" if variant == "control" else "v2")
        seen[variant] += 1
    assert min(seen.values()) > 60  # both variants really got users

    unknown = client.get("/recommend/999999")
    version = unknown.headers["X-Model-Version"]
    expected_default = response.format_body(service.movies("pop1" if version == "v1" else "pop2"))
    assert unknown.data == expected_default.encode()
    assert unknown.headers["X-Recommendation-Source"] == "cold_start"

    service.redis.hset(rediskeys.SPLIT, mapping={"control": 0, "treatment": 100})
    time.sleep(refresh + 0.1)
    for user in USERS:
        resp = client.get(f"/recommend/{user}")
        assert resp.headers["X-AB-Variant"] == "treatment"
        assert resp.data == treatment[user].encode()

    service.redis.delete(rediskeys.SPLIT)  # experiment over: everyone back on rec:active
    time.sleep(refresh + 0.1)
    resp = client.get("/recommend/1")
    assert (resp.headers["X-AB-Variant"], resp.headers["X-Model-Version"]) == ("control", "v1")


def test_a_malformed_split_puts_everyone_in_control(service: Any, experiment: Bodies) -> None:
    control, _ = experiment
    service.redis.hset(rediskeys.SPLIT, "treatment", "lots")
    client = service.client()
    for user in (1, 2, 3, 4, 5):
        resp = client.get(f"/recommend/{user}")
        assert resp.headers["X-AB-Variant"] == "control"
        assert resp.data == control[user].encode()


def test_a_variant_whose_version_is_gone_still_gets_a_list(
    service: Any, experiment: Bodies
) -> None:
    service.redis.hset(rediskeys.VARIANT_VERSIONS, "treatment", "pruned")
    client = service.client(version_refresh_seconds=60.0)
    for round_ in range(2):
        if round_:
            # One early re-read of the routing for the missing version, then none: still
            # one round trip per request, however many treatment users ask.
            service.redis.config_resetstat()
        for user in USERS:
            resp = client.get(f"/recommend/{user}")
            assert resp.status_code == 200
            service.assert_contract_body(resp.data)
            if resp.headers["X-AB-Variant"] == "treatment":
                assert resp.headers["X-Recommendation-Source"] == "fallback"
    stats = service.redis.info("commandstats")
    ours = {k: v for k, v in stats.items() if k not in {"cmdstat_config", "cmdstat_ping"}}
    assert sum(v["calls"] for v in ours.values()) == len(USERS), stats


# --- across gunicorn workers -----------------------------------------------------------------


def test_workers_agree_on_variants_and_export_each_variants_version(
    service: Any, experiment: Bodies
) -> None:
    control, treatment = experiment
    split = ab.parse_split({"control": "50", "treatment": "50"})
    served = service.gunicorn({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"})
    try:
        for _ in range(2):  # a fresh connection per request: both workers answer
            for user in USERS:
                resp = requests.get(f"{served.base}/recommend/{user}", timeout=5)
                variant = split.assign(user)
                assert resp.headers["X-AB-Variant"] == variant
                expected = control if variant == "control" else treatment
                assert resp.content == expected[user].encode()
        samples = served.metrics()
    finally:
        served.stop()
    info = "recsys_service_model_version_info"
    assert service.sample(samples, info, variant="control", version="v1") == 1
    assert service.sample(samples, info, variant="treatment", version="v2") == 1
    age = service.sample(samples, "recsys_service_recommendations_age_seconds", variant="treatment")
    assert age > 0
