"""Multi-armed-bandit mode: Thompson sampling moves the split toward the arm that converts.

Each arm's per-user conversion rate gets the posterior Beta(1 + converted users, 1 + users
who did not convert) (a uniform prior). The new share of an arm is the probability that it
is the best, estimated as the share of joint posterior draws it wins. Every arm keeps at
least a floor of traffic, so an arm that was unlucky early can still recover, and the
analysis keeps users in every arm.

A step is meant to run on a schedule (``python -m experiments bandit-step`` from cron or a
task). Shares change gradually, and ``contracts.ab`` moves only the users at the bucket
boundaries between neighbouring variants; the analysis counts a moved user in the
variant they met first. Adaptive allocation biases the plain difference of rates a little
(an arm's rate is sampled more while it looks good); the verdict's tests are those of a
fixed split, so read a bandit's verdict as a guide, not an exact false-positive rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from contracts import ab
from experiments import store
from experiments.analysis import user_outcomes
from experiments.definition import Experiment


def win_shares(
    conversions: ArrayLike, users: ArrayLike, *, draws: int = 10_000, seed: int | list[int] = 0
) -> NDArray[np.float64]:
    """The share of ``draws`` joint posterior draws in which each arm has the highest rate."""
    k = np.asarray(conversions, dtype=np.float64)
    n = np.asarray(users, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples = rng.beta(1 + k, 1 + n - k, size=(draws, k.size))
    wins = np.bincount(samples.argmax(axis=1), minlength=k.size)
    return wins / draws


def integer_weights(
    shares: Sequence[float] | NDArray[np.float64], *, floor: float, total: int = ab.BUCKETS
) -> list[int]:
    """Integer weights summing to ``total`` (the service's bucket count, so no precision is
    lost): each arm gets ``floor`` of the total first, the rest in proportion to ``shares``,
    rounded by largest remainder. Every weight is at least ``floor x total`` rounded up
    (unless that exceeds an equal split)."""
    shares = np.asarray(shares, dtype=np.float64)
    arms = shares.size
    base = min(math.ceil(floor * total - 1e-9), total // arms)
    rest = total - base * arms
    scaled = shares / shares.sum() * rest if shares.sum() > 0 else np.full(arms, rest / arms)
    extra = np.floor(scaled).astype(np.int64)
    short = rest - int(extra.sum())
    extra[np.argsort(-(scaled - extra), kind="stable")[:short]] += 1
    return [base + int(e) for e in extra]


def propose(
    experiment: Experiment,
    outcomes: pd.DataFrame,
    *,
    draws: int = 10_000,
    seed: int = 0,
) -> dict[str, int]:
    """The split Thompson sampling gives ``experiment`` on these outcomes (users first
    exposed since it started). The draws are seeded by ``seed`` and the number of splits
    the experiment had, so a step is reproducible and successive steps differ."""
    arms = sorted(experiment.variants)
    users, _ = user_outcomes(outcomes, variants=arms, since=experiment.started_at)
    counts = users.groupby("variant")["converted"].agg(["size", "sum"])
    n = [int(counts["size"].get(a, 0)) for a in arms]
    k = [int(counts["sum"].get(a, 0)) for a in arms]
    shares = win_shares(k, n, draws=draws, seed=[seed, len(experiment.history)])
    return dict(zip(arms, integer_weights(shares, floor=experiment.floor), strict=True))


def step(
    client: store.Client,
    outcomes: pd.DataFrame,
    *,
    draws: int = 10_000,
    seed: int = 0,
    now: datetime | None = None,
) -> Experiment:
    """One bandit update of the running experiment's split in Redis. Refused (``store.
    RefusedError``) when none runs, when it is a fixed split, or when another experiment
    took its place while this one was being computed."""
    experiment = store.running(client)
    if experiment is None:
        raise store.RefusedError("no experiment is running")
    if experiment.mode != "bandit":
        raise store.RefusedError(f"experiment {experiment.name} has a fixed split")
    weights = propose(experiment, outcomes, draws=draws, seed=seed)
    return store.change_split(client, weights, source="bandit", now=now, name=experiment.name)
