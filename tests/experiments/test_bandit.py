"""The bandit (``experiments.bandit``): integer weights that sum up and keep the floor,
seeded Thompson shares, and steps that move traffic in Redis to the better arm."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import ab, rediskeys
from experiments import bandit, store
from experiments.definition import Experiment

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=6),
    st.floats(0, 0.5),
    st.sampled_from([100, ab.BUCKETS]),
)
def test_integer_weights_sum_to_the_total_and_respect_the_floor(
    shares: list[float], floor: float, total: int
) -> None:
    weights = bandit.integer_weights(shares, floor=floor, total=total)
    assert sum(weights) == total and len(weights) == len(shares)
    if floor * len(shares) <= 1:
        assert min(weights) >= min(math.ceil(floor * total - 1e-9), total // len(shares))
    if sum(shares) > 0 and floor == 0:
        best = int(np.argmax(shares))
        assert weights[best] == max(weights)


def test_thompson_shares_favour_the_better_arm_and_are_seeded() -> None:
    shares = bandit.win_shares([100, 200], [1000, 1000], draws=5000, seed=1)
    assert shares[1] > 0.99 and shares.sum() == pytest.approx(1)
    assert np.array_equal(shares, bandit.win_shares([100, 200], [1000, 1000], draws=5000, seed=1))
    even = bandit.win_shares([0, 0, 0], [0, 0, 0], draws=30_000, seed=2)
    assert np.allclose(even, 1 / 3, atol=0.02)  # no data: the prior, all arms alike


def test_bandit_steps_move_traffic_to_the_better_arm_and_keep_the_floor(
    published: redis.Redis,
) -> None:
    """Six rounds: new users arrive, are routed by the split in Redis exactly as the
    service routes them, convert at their arm's rate, then the bandit updates the split."""
    client = published
    rates = {"control": 0.10, "a": 0.10, "b": 0.16}
    variants = {"control": "v1", "a": "v2", "b": "v3"}
    experiment = Experiment("mab", variants, dict.fromkeys(variants, 1), "bandit", floor=0.05)
    store.start(client, experiment, now=T0)
    rng = np.random.default_rng(4)
    frames = []
    for round_ in range(6):
        split = ab.parse_split(client.hgetall(rediskeys.SPLIT))
        users = np.arange(round_ * 3000 + 1, (round_ + 1) * 3000 + 1)
        arms = np.array([split.assign(int(u)) for u in users])
        converted = rng.random(users.size) < np.vectorize(rates.get)(arms)
        frames.append(
            pd.DataFrame(
                {
                    "user": users,
                    "variant": arms,
                    "first_exposure": pd.Timestamp("2025-03-01") + pd.Timedelta(hours=round_),
                    "converted": converted,
                }
            )
        )
        now = T0 + timedelta(hours=round_, minutes=30)
        stepped = bandit.step(client, pd.concat(frames), draws=4000, seed=0, now=now)
    weights = {k: int(v) for k, v in client.hgetall(rediskeys.SPLIT).items()}
    assert weights == dict(stepped.weights) and sum(weights.values()) == ab.BUCKETS
    assert weights["b"] >= 0.8 * ab.BUCKETS
    assert min(weights.values()) >= 0.05 * ab.BUCKETS
    assert [c.source for c in stepped.history] == ["start", *["bandit"] * 6]
    fixed = Experiment("fixed", variants, dict.fromkeys(variants, 1))
    store.stop(client)
    store.start(client, fixed)
    with pytest.raises(store.RefusedError, match="fixed split"):
        bandit.step(client, pd.concat(frames))
