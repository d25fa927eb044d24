"""Online metrics per (model version, A/B variant), from totals that add up across runs.

Everything is kept as sums that two stretches of the logs can simply add (so the incremental
job and a one-off computation over all the logs agree), and turned into rates only at the end
by ``summarise``:

- request totals (every request, when read): requests, status-200 answers -> availability;
- a latency histogram with log-spaced bins 1 % wide -> p50/p95/p99 within 0.5 % of the
  exact (inverted-CDF) percentile, unlike averaging per-run percentiles, which is meaningless;
- conversion totals (exposures whose window has closed, ``online.conversion``):
  recommendations, conversions, watched minutes, positions -> conversion rate per
  recommendation, minutes per recommendation, mean position of the watched movie;
- per-user outcomes (``conversion.version_outcomes``) -> conversion rate per user;
- the lists served: per (version, variant, user, list) the last time it was served.

Personalisation is the share of a (version, variant)'s users whose latest list differs from
the reference list: the one given (``ONLINE_REFERENCE_LIST``, e.g. the global popular list),
or else the list most users got in that (version, variant). Within one model version every
unknown user gets the same cold-start list while known users get their own, so the most
common list is the cold-start list whenever it was served to two users or more; when no list
reached two users there is no shared list and every user counts as personalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from contracts.response import SEPARATOR
from online.conversion import conversions, version_outcomes
from online.settings import DEFAULT_DEDUP, DEFAULT_WINDOW

GROUP = ["version", "variant"]
TOTAL_COLUMNS = (
    "requests",
    "ok",
    "recommendations",
    "conversions",
    "minutes",
    "position_sum",
    "positions",
)
QUANTILES = (50, 95, 99)
LATENCY_FLOOR_MS = 0.001  # bin 0 holds everything at or below this
LATENCY_RATIO = 1.01  # each bin is 1 % wider than the last
_LOG_RATIO = np.log(LATENCY_RATIO)


def request_totals(recs: pd.DataFrame) -> pd.DataFrame:
    """Requests and status-200 answers per (version, variant); every request counts."""
    totals = (
        recs.assign(ok=recs["status"] == 200)
        .groupby(GROUP)
        .agg(requests=("status", "size"), ok=("ok", "sum"))
    )
    return _totals(totals)


def conversion_totals(recs: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """Exposures, conversions, minutes and positions per (version, variant), from ``judge``."""
    rows = recs.loc[judged["exposure"], GROUP].assign(
        converted=judged["converted"],
        minutes=judged["minutes"],
        position=judged["position"].fillna(0).astype("int64"),
    )
    totals = rows.groupby(GROUP).agg(
        recommendations=("converted", "size"),
        conversions=("converted", "sum"),
        minutes=("minutes", "sum"),
        position_sum=("position", "sum"),
        positions=("converted", "sum"),
    )
    return _totals(totals)


def add_totals(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    return _totals(a.add(b, fill_value=0))


def _totals(table: pd.DataFrame) -> pd.DataFrame:
    table = table.reindex(columns=list(TOTAL_COLUMNS), fill_value=0).fillna(0)
    dtypes = {c: "float64" if c == "minutes" else "int64" for c in TOTAL_COLUMNS}
    table = table.astype(dtypes)
    table.index = table.index.set_names(GROUP) if len(table) else _empty_index()
    return table


def _empty_index() -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([pd.array([], dtype="str")] * 2, names=GROUP)


def empty_totals() -> pd.DataFrame:
    return _totals(pd.DataFrame(index=_empty_index()))


def latency_histogram(recs: pd.DataFrame) -> pd.DataFrame:
    """(version, variant, bin) -> count of requests whose latency falls in that bin."""
    latency = np.maximum(recs["latency_ms"].to_numpy(dtype=np.float64), LATENCY_FLOOR_MS)
    bins = np.floor(np.log(latency / LATENCY_FLOOR_MS) / _LOG_RATIO).astype(np.int64)
    table = recs[GROUP].assign(bin=bins).groupby([*GROUP, "bin"]).size().rename("count")
    return table.reset_index().astype({"bin": "int64", "count": "int64"})


def add_histograms(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat([a, b], ignore_index=True)
    return both.groupby([*GROUP, "bin"], as_index=False)["count"].sum()


def percentiles(histogram: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 (ms) per (version, variant): the geometric middle of the bin holding the
    inverted-CDF percentile."""
    rows = {}
    for key, group in histogram.sort_values("bin").groupby(GROUP, sort=True):
        counts = group["count"].to_numpy()
        cumulative = np.cumsum(counts)
        bins = group["bin"].to_numpy()
        at = [np.searchsorted(cumulative, q / 100 * cumulative[-1]) for q in QUANTILES]
        rows[key] = [LATENCY_FLOOR_MS * LATENCY_RATIO ** (bins[i] + 0.5) for i in at]
    columns = [f"latency_p{q}_ms" for q in QUANTILES]
    if not rows:
        return pd.DataFrame(columns=columns, index=_empty_index(), dtype="float64")
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index = pd.MultiIndex.from_tuples(table.index, names=GROUP)
    return table


def served_lists(recs: pd.DataFrame) -> pd.DataFrame:
    """(version, variant, user, list_hash) -> last_time: which lists each user was served."""
    ok = recs[(recs["status"] == 200) & recs["user"].notna()]
    texts = np.array([SEPARATOR.join(m) for m in ok["movies"]], dtype=object)
    table = pd.DataFrame(
        {
            "version": ok["version"].to_numpy(),
            "variant": ok["variant"].to_numpy(),
            "user": ok["user"].to_numpy(dtype=np.int64),
            "list_hash": list_hash(texts),
            "last_time": ok["time"].to_numpy(dtype="datetime64[ns]"),
        }
    )
    return merge_served(table.iloc[:0], table)


def list_hash(texts: np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each list's response body (signed, for Parquet)."""
    return pd.util.hash_array(texts).view(np.int64)


def merge_served(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat([a, b], ignore_index=True)
    keys = ["version", "variant", "user", "list_hash"]
    table = both.groupby(keys, as_index=False, sort=True)["last_time"].max()
    return table.astype({"version": "str", "variant": "str", "user": "int64"})


def personalisation(served: pd.DataFrame, reference: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (version, variant): users served, and the share whose latest list differs from
    the reference (see the module docstring)."""
    if not len(served):
        return pd.DataFrame(
            {"users_served": pd.Series(dtype="int64"), "personalisation": pd.Series(dtype=float)},
            index=_empty_index(),
        )
    latest = served.sort_values("last_time").groupby([*GROUP, "user"]).tail(1)
    if reference is not None:
        ref_hash = list_hash(np.array([SEPARATOR.join(reference)], dtype=object))[0]
        latest = latest.assign(reference=ref_hash)
    else:
        reach = served.groupby([*GROUP, "list_hash"]).size().rename("reach").reset_index()
        top = reach.sort_values(["reach", "list_hash"]).groupby(GROUP).tail(1)
        top = top[top["reach"] >= 2].rename(columns={"list_hash": "reference"})
        latest = latest.merge(top[[*GROUP, "reference"]], on=GROUP, how="left")
    latest = latest.assign(personal=latest["list_hash"] != latest["reference"])
    return latest.groupby(GROUP).agg(
        users_served=("user", "size"), personalisation=("personal", "mean")
    )


def summarise(
    totals: pd.DataFrame,
    histogram: pd.DataFrame,
    per_version: pd.DataFrame,
    served: pd.DataFrame,
    reference: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rates per (version, variant), from the accumulated sums; NaN where undefined."""
    users = (
        per_version.assign(converted=per_version["conversions"] > 0)
        .groupby(GROUP)
        .agg(users=("user", "size"), converted_users=("converted", "sum"))
    )
    table = totals.join(
        [users, percentiles(histogram), personalisation(served, reference)], how="outer"
    )
    counts = [*TOTAL_COLUMNS, "users", "converted_users", "users_served"]
    table[counts] = table[counts].fillna(0).astype({c: "int64" for c in counts if c != "minutes"})
    with np.errstate(divide="ignore", invalid="ignore"):
        table["availability"] = table["ok"] / table["requests"]
        table["conversion_rate"] = table["conversions"] / table["recommendations"]
        table["user_conversion_rate"] = table["converted_users"] / table["users"]
        table["minutes_per_recommendation"] = table["minutes"] / table["recommendations"]
        table["mean_position"] = table["position_sum"] / table["positions"]
    return table.replace([np.inf, -np.inf], np.nan).sort_index()


def online_metrics(
    recs: pd.DataFrame,
    watches: pd.DataFrame,
    window: timedelta = DEFAULT_WINDOW,
    dedup: timedelta = DEFAULT_DEDUP,
    reference: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every metric over one set of logs at once (the job computes the same incrementally).
    All exposures count: pass recommendations whose window has closed."""
    judged = conversions(recs, watches, window, dedup)
    totals = add_totals(request_totals(recs), conversion_totals(recs, judged))
    per_version = version_outcomes(recs, judged)
    return summarise(totals, latency_histogram(recs), per_version, served_lists(recs), reference)
