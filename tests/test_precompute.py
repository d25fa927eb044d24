"""Top-k selection against a naive reference, and publishing against a real Redis."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

from precompute import publish
from precompute.bodies import user_bodies
from precompute.topn import exclude_seen, top_k
from service import rediskeys
from service.response import parse_body
from training.factors import FactorModel
from training.interactions import Interactions


def naive_top_k(row: np.ndarray, seen: set[int], k: int) -> list[int]:
    """The obvious reference: sort every unseen item by (-score, index)."""
    candidates = [(-float(s), i) for i, s in enumerate(row) if i not in seen]
    return [i for _, i in sorted(candidates)[:k]]


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 40)),
        # Few distinct values: ties are the hard case.
        elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -3.0]),
    ),
    st.integers(1, 25),
    st.randoms(use_true_random=False),
)
def test_top_k_matches_naive_reference(scores: np.ndarray, k: int, rnd) -> None:
    n_rows, n_items = scores.shape
    seen_sets = [{i for i in range(n_items) if rnd.random() < 0.3} for _ in range(n_rows)]
    seen = sparse.csr_matrix(
        [[1 if i in s else 0 for i in range(n_items)] for s in seen_sets], dtype=np.int8
    )
    work = scores.copy()
    exclude_seen(work, seen)
    got = top_k(work, k)
    for r in range(n_rows):
        expected = naive_top_k(scores[r], seen_sets[r], k)
        assert got[r].tolist() == expected + [-1] * (k - len(expected))


def small_model(n_users: int = 30, n_items: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    user_ids = np.arange(1, n_users + 1, dtype=np.int64) * 7
    item_ids = np.array([f"movie+{i}+2000" for i in range(n_items)], dtype=object)
    item_ids.sort()
    seen = sparse.random(n_users, n_items, density=0.2, random_state=seed, format="csr")
    seen.data[:] = 1
    data = Interactions(user_ids, item_ids, None, seen.astype(np.int8))
    model = FactorModel(
        "test",
        user_ids[: n_users - 5],  # the last five users are unknown to the model
        item_ids,
        rng.normal(size=(n_users - 5, 8)).astype(np.float32),
        rng.normal(size=(n_items, 8)).astype(np.float32),
        rng.normal(size=n_items).astype(np.float32),
    )
    return model, data


@pytest.mark.parametrize("block_size", [1, 7, 1000])
def test_user_bodies_match_per_user_reference(block_size: int) -> None:
    model, data = small_model()
    bodies = dict(user_bodies(model, data, block_size=block_size))
    assert sorted(bodies) == sorted(data.user_ids.tolist())
    popularity = np.log1p(data.popularity()).astype(np.float32)
    for u, user_id in enumerate(data.user_ids):
        row = model.user_rows(np.array([user_id]))[0]
        scores = model.score_block(np.array([row]))[0] if row >= 0 else popularity
        seen = set(data.seen[u].indices.tolist())
        expected = [data.item_ids[i] for i in naive_top_k(scores, seen, 20)]
        assert parse_body(bodies[int(user_id)]) == expected


def test_a_user_who_saw_everything_still_gets_twenty_unique() -> None:
    model, data = small_model(n_items=25)
    seen = data.seen.tolil()
    seen[0, :] = 1
    data = Interactions(data.user_ids, data.item_ids, None, seen.tocsr())
    body = dict(user_bodies(model, data))[int(data.user_ids[0])]
    movies = parse_body(body)
    assert len(movies) == 20
    assert len(set(movies)) == 20


def publish_lists(client: redis.Redis, tag: str, users: int = 100) -> publish.Published:
    bodies = ((u, f"{tag}+{u}+2000") for u in range(1, users + 1))
    return publish.publish(
        client, bodies, default_body=f"{tag}+default+2000", meta={"model_version": tag}, batch=16
    )


def test_publish_switches_atomically_and_keeps_one_for_rollback(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    first = publish_lists(client, "a")
    assert first.users == 100
    assert publish.active(client) == first.version
    assert client.get(rediskeys.user(first.version, 42)) == "a+42+2000"
    assert client.get(rediskeys.default(first.version)) == "a+default+2000"
    meta = client.hgetall(rediskeys.meta(first.version))
    assert meta["model_version"] == "a"
    assert meta["users"] == "100"

    second = publish_lists(client, "b")
    third = publish_lists(client, "c")
    assert publish.active(client) == third.version
    assert publish.versions(client) == [second.version, third.version]
    assert third.removed == [first.version]
    assert not client.keys(rediskeys.version_pattern(first.version))

    assert publish.rollback(client) == second.version
    assert publish.active(client) == second.version
    assert client.get(rediskeys.user(second.version, 42)) == "b+42+2000"
    assert not client.keys(rediskeys.version_pattern(third.version))
    with pytest.raises(publish.PublishError):
        publish.rollback(client)


def test_crashed_publish_leaves_active_untouched_and_is_cleaned_up(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    good = publish_lists(client, "good")

    def exploding_bodies():
        for u in range(1, 50):
            yield u, f"bad+{u}+2000"
        raise RuntimeError("scoring crashed mid-publish")

    with pytest.raises(RuntimeError):
        publish.publish(client, exploding_bodies(), default_body="x+2000", meta={}, batch=8)
    assert publish.active(client) == good.version
    assert client.get(rediskeys.user(good.version, 1)) == "good+1+2000"
    leftovers = [k for k in client.keys("rec:*:u:*") if not k.startswith(f"rec:{good.version}:")]
    assert leftovers  # the crash left partial keys behind...

    publish_lists(client, "next")
    leftovers = [k for k in client.keys("rec:*") if k.split(":")[1] not in publish.versions(client)]
    assert set(leftovers) <= {rediskeys.ACTIVE, rediskeys.VERSIONS}  # ...the next run removed them
    assert not client.smembers(publish.PENDING)
