"""The statistics of an A/B comparison of per-user conversion, and the verdict rule.

The unit is the user, not the request: a user's requests are not independent of each other,
so counting requests would overstate the evidence. Each user either converted or did not,
which makes every test here a comparison of two binomial proportions.

Functions take counts and broadcast over numpy arrays, so many simulated experiments can be
tested in one call (the false-positive-rate test does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

Outcome = Literal["better", "worse", "no difference", "no difference yet"]


@dataclass(frozen=True)
class ZTest:
    """Treatment minus control: the difference of rates, its ``1 - alpha`` Wald interval
    (unpooled standard error), and the two-sided p-value of the pooled z statistic. NaN
    where an arm has no users."""

    diff: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    z: NDArray[np.float64]
    p_value: NDArray[np.float64]


def two_proportion_ztest(
    conversions: ArrayLike,
    users: ArrayLike,
    control_conversions: ArrayLike,
    control_users: ArrayLike,
    *,
    alpha: float = 0.05,
) -> ZTest:
    """The two-proportion z-test of treatment (``conversions`` of ``users``) vs control.

    Under no difference the pooled statistic is what the null hypothesis predicts, so it
    gives the p-value; the interval describes the difference actually seen, so it uses each
    arm's own variance. Both rates 0 (or both 1) is no evidence at all: p = 1."""
    k1, n1, k0, n0 = (
        np.asarray(a, dtype=np.float64)
        for a in (conversions, users, control_conversions, control_users)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p0 = k1 / n1, k0 / n0
        diff = p1 - p0
        se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        pooled = (k1 + k0) / (n1 + n0)
        se_pooled = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        z = np.where(se_pooled > 0, diff / se_pooled, 0.0)
    z = np.where(np.isnan(diff), np.nan, z)
    half = stats.norm.ppf(1 - alpha / 2) * se
    p_value = 2 * stats.norm.sf(np.abs(z))
    return ZTest(diff, diff - half, diff + half, z, p_value)


def bootstrap_diff_ci(
    conversions: ArrayLike,
    users: ArrayLike,
    control_conversions: ArrayLike,
    control_users: ArrayLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int | list[int] = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile bootstrap interval of treatment minus control rate, seeded.

    Resampling an arm's n users with replacement and counting the converted ones draws
    that count from Binomial(n, observed rate) exactly (each pick converts with that
    probability, independently), so the resamples are drawn as binomials: the same
    bootstrap, in O(resamples) instead of O(resamples x users). NaN where an arm is empty.
    """
    k1, n1, k0, n0 = (
        np.asarray(a) for a in (conversions, users, control_conversions, control_users)
    )
    n1, n0 = n1.astype(np.int64), n0.astype(np.int64)
    rng = np.random.default_rng(seed)
    shape = (resamples, *np.broadcast_shapes(k1.shape, n1.shape, k0.shape, n0.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.where(n1 > 0, k1 / np.maximum(n1, 1), 0.0)
        p0 = np.where(n0 > 0, k0 / np.maximum(n0, 1), 0.0)
        diffs = rng.binomial(n1, p1, size=shape) / n1 - rng.binomial(n0, p0, size=shape) / n0
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2], axis=0)
    empty = (n1 == 0) | (n0 == 0)
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def sample_size_per_arm(
    baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Users per arm for a two-sided test at ``alpha`` to detect a change of ``mde`` (an
    absolute difference) from ``baseline`` with probability ``power``; equal arms.

    The closed form for two proportions without continuity correction (Fleiss, Levin &
    Paik, *Statistical Methods for Rates and Proportions*, 3rd ed., eq. 4.14)::

        n = (z_{1-a/2} sqrt(2 pbar qbar) + z_{1-b} sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2
    """
    p1, p2 = baseline, baseline + mde
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1) or mde == 0:
        raise ValueError(f"baseline {baseline} and baseline + mde {p2} must be distinct rates")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power lie strictly between 0 and 1")
    pbar = (p1 + p2) / 2
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    root = z_alpha * math.sqrt(2 * pbar * (1 - pbar)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root**2 / mde**2)


def required_users(baseline: float, mde: float, *, alpha: float, power: float) -> int | None:
    """``sample_size_per_arm`` around an observed control rate: the change tested is an
    increase, or a decrease when the rate is too close to 1 to rise by ``mde``. None when
    there is no baseline yet (NaN)."""
    if math.isnan(baseline):
        return None
    mde = abs(mde)
    step = mde if baseline + mde <= 1 else -mde
    return sample_size_per_arm(baseline, step, alpha=alpha, power=power)


def alpha_per_test(alpha: float, treatments: int, looks: int) -> float:
    """Bonferroni: ``alpha`` split over every treatment-vs-control test at every planned
    look, so the chance of any false verdict stays at most ``alpha`` over the experiment."""
    return alpha / (max(1, treatments) * max(1, looks))


class Evidence(Protocol):
    """One treatment vs control, as the verdict needs it (``analysis.Comparison`` is one).
    Read-only members, so a frozen dataclass satisfies it."""

    @property
    def variant(self) -> str: ...
    @property
    def diff(self) -> float: ...
    @property
    def p_value(self) -> float: ...
    @property
    def users(self) -> int: ...
    @property
    def control_users(self) -> int: ...
    @property
    def required_users(self) -> int | None: ...


@dataclass(frozen=True)
class Verdict:
    label: str  # "winner: X", "stop: X is worse", "stop: no difference", "no difference yet"
    reason: str

    def __str__(self) -> str:
        return self.label


def outcome(evidence: Evidence, alpha: float) -> Outcome:
    """One treatment's standing, ``alpha`` being the per-test level (``alpha_per_test``).

    - worse: significantly below control (p < alpha, diff < 0), at any look: a harm is
      worth stopping early, and alpha already covers the planned looks;
    - better: significantly above control *and* both arms reached the planned sample size;
      calling a winner early, the moment p dips below alpha, is how repeated looks inflate
      the false-positive rate, so an early lead waits;
    - no difference: both arms reached the planned size and the test is not significant;
    - no difference yet: anything else.
    """
    significant = bool(evidence.p_value < alpha)  # NaN (an empty arm) is not significant
    reached = evidence.required_users is not None and (
        min(evidence.users, evidence.control_users) >= evidence.required_users
    )
    if significant and evidence.diff < 0:
        return "worse"
    if significant and evidence.diff > 0 and reached:
        return "better"
    return "no difference" if reached else "no difference yet"


def verdict(evidence: Sequence[Evidence], alpha: float) -> Verdict:
    """The experiment's verdict from each treatment's ``outcome`` at per-test ``alpha``:

    1. ``winner: X`` if some treatment is better (the largest difference among several);
    2. ``stop: X is worse`` if some treatment is worse (the worst of several);
    3. ``stop: no difference`` if every treatment reached the planned size without a
       significant difference (running longer is not planned to find one);
    4. ``no difference yet`` otherwise.
    """
    standing = [(outcome(e, alpha), e) for e in evidence]
    better = [e for o, e in standing if o == "better"]
    worse = [e for o, e in standing if o == "worse"]
    if better:
        best = max(better, key=lambda e: e.diff)
        return Verdict(
            f"winner: {best.variant}",
            f"{best.variant} converts {best.diff:+.4f} vs control, p={best.p_value:.2g} < "
            f"{alpha:.2g}, with the planned {best.required_users} users per arm reached",
        )
    if worse:
        bad = min(worse, key=lambda e: e.diff)
        return Verdict(
            f"stop: {bad.variant} is worse",
            f"{bad.variant} converts {bad.diff:+.4f} vs control, p={bad.p_value:.2g} < {alpha:.2g}",
        )
    if standing and all(o == "no difference" for o, _ in standing):
        return Verdict(
            "stop: no difference",
            f"every treatment reached its planned sample size with p >= {alpha:.2g}",
        )
    leading = [e for _, e in standing if e.p_value < alpha and e.diff > 0]
    if leading:
        lead = max(leading, key=lambda e: e.diff)
        return Verdict(
            "no difference yet",
            f"{lead.variant} leads by {lead.diff:+.4f} (p={lead.p_value:.2g}) but a winner "
            f"waits for the planned {lead.required_users} users per arm "
            f"(now {min(lead.users, lead.control_users)})",
        )
    planned = [e.required_users for e in evidence if e.required_users is not None]
    return Verdict(
        "no difference yet",
        f"nothing significant at {alpha:.2g}; planned users per arm: "
        f"{max(planned) if planned else 'unknown (no control users)'}",
    )


def proportion_interval(
    conversions: ArrayLike, users: ArrayLike, *, confidence: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The exact (Clopper-Pearson) interval of a conversion rate, from the beta quantiles:
    honest at the small counts the first hours of an experiment have. NaN where n = 0."""
    k, n = np.asarray(conversions, dtype=np.float64), np.asarray(users, dtype=np.float64)
    tail = (1 - confidence) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(k > 0, stats.beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1 - tail, k + 1, n - k), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)
