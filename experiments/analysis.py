"""An experiment's analysis from its outcomes: per-variant conversion, each treatment vs
control (difference, z and bootstrap intervals, p-value, planned sample size) and the
verdict, at the user level.

The input has one row per (user, variant): ``user``, ``variant``, ``first_exposure``,
``converted`` (also ``version``, ``exposures``, ``conversions``, ``minutes``, not needed
here). A user counted in two variants (a split change moved the bucket boundary past them)
counts once, in the variant they met first: later exposures were not what they were
assigned at the start, and counting them twice would break the independence of the arms.
Rows that cannot be used (no user, a bad variant name, no time) are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from contracts import ab
from experiments import stats

COLUMNS = ("user", "variant", "first_exposure", "converted")
INTERVAL = 0.95  # the per-variant interval in tables and plots


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    users: int
    conversions: int  # users who converted
    rate: float
    low: float  # INTERVAL exact interval of the rate
    high: float


@dataclass(frozen=True)
class Comparison:
    """One treatment minus control; intervals at the per-test level ``1 - alpha_per_test``."""

    variant: str
    control: str
    users: int
    control_users: int
    diff: float
    z_low: float
    z_high: float
    p_value: float
    boot_low: float
    boot_high: float
    required_users: int | None  # per arm, for the MDE at the per-test alpha and the power
    outcome: stats.Outcome


@dataclass(frozen=True)
class Analysis:
    control: str
    alpha: float
    alpha_per_test: float
    looks: int
    mde: float
    power: float
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    verdict: stats.Verdict
    dropped: Mapping[str, int]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (an empty arm) becomes None."""
        return _plain(
            {
                "control": self.control,
                "alpha": self.alpha,
                "alpha_per_test": self.alpha_per_test,
                "looks": self.looks,
                "mde": self.mde,
                "power": self.power,
                "verdict": self.verdict.label,
                "reason": self.verdict.reason,
                "variants": [asdict(v) for v in self.variants],
                "comparisons": [asdict(c) for c in self.comparisons],
                "dropped": dict(self.dropped),
            }
        )


def user_outcomes(
    outcomes: pd.DataFrame,
    *,
    variants: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per user (``user``, ``variant``, ``first_exposure``, ``converted``), restricted
    to ``variants`` and to first exposures in [since, until); and the rows dropped, by why."""
    missing = [c for c in COLUMNS if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack columns {missing}; they have {list(outcomes.columns)}")
    frame = pd.DataFrame(
        {
            "user": pd.to_numeric(outcomes["user"], errors="coerce"),
            "variant": outcomes["variant"].astype("string"),
            "first_exposure": _utc_naive(outcomes["first_exposure"]),
            "converted": _flags(outcomes["converted"]),
        }
    )
    dropped: dict[str, int] = {}
    unusable = frame.isna().any(axis=1) | ~frame["variant"].fillna("").map(ab.valid_variant)
    dropped["unusable_rows"] = int(unusable.sum())
    frame = frame[~unusable]
    if variants is not None:
        wanted = frame["variant"].isin(list(variants))
        dropped["other_variants"] = int((~wanted).sum())
        frame = frame[wanted]
    in_window = pd.Series(True, index=frame.index)
    if since is not None:
        in_window &= frame["first_exposure"] >= _utc_naive_time(since)
    if until is not None:
        in_window &= frame["first_exposure"] < _utc_naive_time(until)
    dropped["outside_window"] = int((~in_window).sum())
    frame = frame[in_window]
    per_pair = frame.groupby(["user", "variant"], as_index=False, observed=True).agg(
        first_exposure=("first_exposure", "min"), converted=("converted", "any")
    )
    per_pair = per_pair.sort_values(["first_exposure", "variant"], kind="stable")
    users = per_pair.drop_duplicates("user", keep="first")
    dropped["later_variant_rows"] = len(per_pair) - len(users)
    users = users.astype({"user": np.int64, "variant": str, "converted": bool})
    return users.reset_index(drop=True), dropped


def analyze(
    outcomes: pd.DataFrame,
    control: str = ab.DEFAULT_VARIANT,
    *,
    alpha: float = 0.05,
    mde: float = 0.02,
    power: float = 0.8,
    looks: int = 1,
    resamples: int = 2000,
    seed: int = 0,
    variants: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Analysis:
    """Compare every variant with ``control`` (see ``stats`` for the tests and the verdict
    rule). ``variants`` (default: all in the data, plus control) limits the arms; ``since``
    and ``until`` the first exposures counted (an experiment's start and stop)."""
    if not (0 < alpha < 1 and 0 < power < 1 and 0 < mde < 1) or looks < 1 or resamples < 1:
        raise ValueError("want 0 < alpha, power, mde < 1 and looks, resamples >= 1")
    wanted = None if variants is None else sorted({*variants, control})
    users, dropped = user_outcomes(outcomes, variants=wanted, since=since, until=until)
    counts = users.groupby("variant")["converted"].agg(["size", "sum"])
    names = wanted if wanted is not None else sorted({*counts.index, control})
    n = np.array([int(counts["size"].get(v, 0)) for v in names], dtype=np.int64)
    k = np.array([int(counts["sum"].get(v, 0)) for v in names], dtype=np.int64)
    low, high = stats.proportion_interval(k, n, confidence=INTERVAL)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = k / n
    summaries = tuple(
        VariantSummary(v, int(n[i]), int(k[i]), float(rates[i]), float(low[i]), float(high[i]))
        for i, v in enumerate(names)
    )
    treatments = [i for i, v in enumerate(names) if v != control]
    c = names.index(control)
    per_test = stats.alpha_per_test(alpha, len(treatments), looks)
    test = stats.two_proportion_ztest(k[treatments], n[treatments], k[c], n[c], alpha=per_test)
    boot_low, boot_high = stats.bootstrap_diff_ci(
        k[treatments], n[treatments], k[c], n[c], alpha=per_test, resamples=resamples, seed=seed
    )
    required = stats.required_users(float(rates[c]), mde, alpha=per_test, power=power)
    comparisons = []
    for j, i in enumerate(treatments):
        comparison = Comparison(
            variant=names[i],
            control=control,
            users=int(n[i]),
            control_users=int(n[c]),
            diff=float(test.diff[j]),
            z_low=float(test.low[j]),
            z_high=float(test.high[j]),
            p_value=float(test.p_value[j]),
            boot_low=float(boot_low[j]),
            boot_high=float(boot_high[j]),
            required_users=required,
            outcome="no difference yet",
        )
        comparisons.append(replace(comparison, outcome=stats.outcome(comparison, per_test)))
    return Analysis(
        control=control,
        alpha=alpha,
        alpha_per_test=per_test,
        looks=looks,
        mde=mde,
        power=power,
        variants=summaries,
        comparisons=tuple(comparisons),
        verdict=stats.verdict(comparisons, per_test),
        dropped=dropped,
    )


def timeline(users: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Cumulative conversion per variant by first-exposure bucket: at each bucket's end, the
    users first exposed so far, how many converted (as of the data's date) and the
    ``INTERVAL`` exact interval. Takes ``user_outcomes``'s frame."""
    end = pd.tseries.frequencies.to_offset(freq)
    bucketed = users.assign(time=users["first_exposure"].dt.floor(freq) + end)
    per_bucket = (
        bucketed.groupby(["variant", "time"])["converted"]
        .agg(users="size", conversions="sum")
        .reset_index()
        .sort_values(["variant", "time"])
    )
    per_bucket["users"] = per_bucket.groupby("variant")["users"].cumsum()
    per_bucket["conversions"] = per_bucket.groupby("variant")["conversions"].cumsum()
    per_bucket["rate"] = per_bucket["conversions"] / per_bucket["users"]
    low, high = stats.proportion_interval(
        per_bucket["conversions"], per_bucket["users"], confidence=INTERVAL
    )
    return per_bucket.assign(low=low, high=high).reset_index(drop=True)


def _utc_naive(column: pd.Series) -> pd.Series:
    """Times as naive UTC, whatever the source gave (naive is taken to be UTC already)."""
    times = pd.to_datetime(column, errors="coerce", utc=True)
    return times.dt.tz_localize(None)


def _utc_naive_time(value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _flags(column: pd.Series) -> pd.Series:
    """``converted`` as a nullable boolean: bools as they are, numbers as nonzero, the rest
    (text, missing) as missing, so the row is dropped rather than guessed."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype("boolean")
    numbers = pd.to_numeric(column, errors="coerce")
    return (numbers != 0).astype("boolean").mask(numbers.isna())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
