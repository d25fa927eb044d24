"""The statistics of an A/B comparison (``experiments.stats``) on planted data: with no
effect the false-positive rate stays near alpha, the sample size formula delivers its power
and matches the textbook, the bootstrap interval agrees with the z interval, empty arms give
no numbers, and the verdict rule."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from experiments import analysis, stats


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_with_no_effect_the_false_positive_rate_stays_near_alpha(alpha: float) -> None:
    """1,000 seeded A/A experiments of 2,000 users per arm, every user drawn: the share
    called significant, by the z-test and by the bootstrap interval, is within the 99.9 %
    binomial range around alpha."""
    runs, users, rate = 1000, 2000, 0.1
    rng = np.random.default_rng(7)
    treated = (rng.random((runs, users)) < rate).sum(axis=1)
    control = (rng.random((runs, users)) < rate).sum(axis=1)
    low, high = binom.interval(0.999, runs, alpha)
    test = stats.two_proportion_ztest(treated, users, control, users, alpha=alpha)
    assert low <= int((test.p_value < alpha).sum()) <= high
    assert low <= int(((test.low > 0) | (test.high < 0)).sum()) <= high
    boot_low, boot_high = stats.bootstrap_diff_ci(
        treated, users, control, users, alpha=alpha, resamples=2000, seed=1
    )
    assert low <= int(((boot_low > 0) | (boot_high < 0)).sum()) <= high


def test_the_planned_sample_size_delivers_its_power() -> None:
    """At the formula's n per arm, an effect of exactly the MDE is found ~80 % of the time."""
    base, mde, runs = 0.10, 0.03, 2000
    n = stats.sample_size_per_arm(base, mde, alpha=0.05, power=0.8)
    rng = np.random.default_rng(11)
    found = stats.two_proportion_ztest(
        rng.binomial(n, base + mde, runs), n, rng.binomial(n, base, runs), n
    ).p_value
    low, high = binom.interval(0.999, runs, 0.8)
    assert low <= int((found < 0.05).sum()) <= high


def test_sample_size_matches_the_textbook() -> None:
    """Fleiss, Levin & Paik (2003), no continuity correction: 10 % vs 15 %, two-sided
    alpha 0.05, power 0.8 needs 686 per group."""
    assert stats.sample_size_per_arm(0.10, 0.05, alpha=0.05, power=0.8) == 686
    assert stats.sample_size_per_arm(0.15, -0.05) == 686  # the same two rates, named the other way
    assert stats.sample_size_per_arm(0.10, 0.05, power=0.9) > 686
    assert stats.sample_size_per_arm(0.10, 0.025) > 4 * 686 * 0.9  # ~1/mde^2
    assert stats.required_users(0.99, 0.05, alpha=0.05, power=0.8) is not None  # tests a drop
    assert stats.required_users(float("nan"), 0.05, alpha=0.05, power=0.8) is None
    for bad in [(0.10, 0.0), (0.98, 0.05), (-0.1, 0.05)]:
        with pytest.raises(ValueError):
            stats.sample_size_per_arm(*bad)


def test_the_bootstrap_interval_is_close_to_the_z_interval_and_to_resampling_users(
    outcomes_frame: Callable[..., pd.DataFrame],
) -> None:
    result = analysis.analyze(outcomes_frame({"control": 0.10, "treatment": 0.12}, 5000, seed=3))
    (c,) = result.comparisons
    assert abs(c.boot_low - c.z_low) < 0.002
    assert abs(c.boot_high - c.z_high) < 0.002
    # the binomial shortcut is the same bootstrap as resampling users, by explicit resampling
    rng = np.random.default_rng(5)
    n = 300
    treated, control = np.r_[np.ones(45), np.zeros(n - 45)], np.r_[np.ones(30), np.zeros(n - 30)]
    draws = treated[rng.integers(0, n, (4000, n))].mean(axis=1) - control[
        rng.integers(0, n, (4000, n))
    ].mean(axis=1)
    explicit = np.quantile(draws, [0.025, 0.975])
    low, high = stats.bootstrap_diff_ci(45, n, 30, n, resamples=4000, seed=6)
    assert abs(float(low) - explicit[0]) < 0.006
    assert abs(float(high) - explicit[1]) < 0.006


def test_empty_arms_give_no_numbers_rather_than_errors(
    outcomes_frame: Callable[..., pd.DataFrame],
) -> None:
    test = stats.two_proportion_ztest([0, 5], [0, 10], 0, 10)
    assert np.isnan(test.p_value[0]) and test.p_value[1] < 0.05
    assert stats.two_proportion_ztest(0, 10, 0, 10).p_value == 1.0  # both 0 %: no evidence
    low, high = stats.bootstrap_diff_ci(3, 10, 0, 0)
    assert np.isnan(low) and np.isnan(high)
    only_treatment = outcomes_frame({"treatment": 0.2}, 100)
    result = analysis.analyze(only_treatment)
    assert result.verdict.label == "no difference yet"
    assert result.as_dict()["comparisons"][0]["p_value"] is None  # JSON-ready, not NaN
    json.dumps(result.as_dict(), allow_nan=False)


# --- the verdict rule -----------------------------------------------------------------------


def evidence(variant: str, diff: float, p: float, users: int, required: int | None = 1000):
    fields = {"variant": variant, "diff": diff, "p_value": p, "users": users}
    return SimpleNamespace(**fields, control_users=users, required_users=required)


@pytest.mark.parametrize(
    ("cases", "label"),
    [
        ([evidence("t", 0.03, 0.001, 1000)], "winner: t"),
        ([evidence("t", 0.03, 0.001, 999)], "no difference yet"),  # ahead, too early
        ([evidence("t", -0.03, 0.001, 200)], "stop: t is worse"),  # harm stops early
        ([evidence("t", 0.01, 0.30, 5000)], "stop: no difference"),
        ([evidence("t", 0.01, 0.30, 500)], "no difference yet"),
        ([evidence("t", 0.03, 0.049, 5000)], "stop: no difference"),  # p > the per-test level
        ([evidence("t", math.nan, math.nan, 0, None)], "no difference yet"),
        ([evidence("a", 0.02, 0.001, 2000), evidence("b", 0.04, 0.001, 2000)], "winner: b"),
        ([evidence("a", -0.02, 0.001, 90), evidence("b", -0.04, 0.001, 90)], "stop: b is worse"),
        ([evidence("a", 0.01, 0.5, 2000), evidence("b", 0.0, 0.9, 50)], "no difference yet"),
    ],
)
def test_verdict_rule(cases: list, label: str) -> None:
    verdict = stats.verdict(cases, 0.04)
    assert verdict.label == label
    assert str(verdict) == label and verdict.reason
