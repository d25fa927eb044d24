"""The online metrics per version and variant (``online.totals``): availability, latency
quantiles, personalisation and conversion on a small log worked out by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from online import totals

WINDOW = timedelta(hours=24)
A, B, C, D = "alpha+2001", "beta+2002", "gamma+2003", "delta+2004"
LIST = (A, B, C)  # the list recs_frame serves by default


def test_metrics_on_a_small_log(
    tmp_path: Path,
    journal_watches: Callable[..., pd.DataFrame],
    recs_frame: Callable[[Iterable[dict]], pd.DataFrame],
) -> None:
    popular = (D, C, B)  # the cold-start list: the first 40 users are new
    latencies = np.arange(1, 101, dtype=float)  # control's 100 requests: 1..100 ms
    control = [
        {
            "t": i * 2,
            "user": 100 + i,
            "latency_ms": lat,
            "movies": popular if i < 40 else (f"pick{i}+2000", A, B),
        }
        for i, lat in enumerate(latencies)
    ]
    control[5].update(status=500, movies=())
    control[6].update(status=503, movies=())
    treatment = [
        {
            "t": i,
            "user": 500 + i,
            "variant": "treatment",
            "version": "v2",
            "movies": (f"own{i}+2000", A),
        }
        for i in range(10)
    ]
    treatment.append(
        {"t": 30, "user": 500, "variant": "treatment", "version": "v2", "movies": ("own0+2000", A)}
    )  # user 500 again, same list: 1 user
    recs = recs_frame(control + treatment)
    watches = journal_watches(
        tmp_path,
        [
            *[(101, 150, B, 0), (102, 150, B, 1)],  # control user 150 (list at t=100) starts B
            *[(5, 500, A, 0), (6, 501, "own1+2000", 0)],  # treatment: positions 2 and 1
        ],
    )
    table = totals.online_metrics(recs, watches, WINDOW)
    c = table.loc[("v1", "control")]
    assert c["requests"] == 100 and c["ok"] == 98
    assert c["availability"] == pytest.approx(0.98)
    for q in totals.QUANTILES:
        exact = np.percentile(latencies, q, method="inverted_cdf")
        assert c[f"latency_p{q}_ms"] == pytest.approx(exact, rel=0.005)
    # 98 users served; the 38 cold-start users (40 minus 2 errors) got the most common list
    assert c["users_served"] == 98
    assert c["personalisation"] == pytest.approx(60 / 98)
    assert (c["recommendations"], c["conversions"], c["users"]) == (98, 1, 98)
    assert (c["mean_position"], c["minutes"]) == (3.0, 2.0)
    t = table.loc[("v2", "treatment")]
    assert t["users_served"] == 10
    assert t["personalisation"] == 1.0  # every list is its user's own: no shared list
    assert (t["recommendations"], t["conversions"]) == (11, 2)
    assert t["conversion_rate"] == pytest.approx(2 / 11)
    assert (t["users"], t["converted_users"]) == (10, 2)
    assert t["user_conversion_rate"] == pytest.approx(0.2)
    assert t["mean_position"] == pytest.approx(1.5)
    assert t["minutes_per_recommendation"] == pytest.approx(2 / 11)
    # A given reference list (say the global popular one) replaces the most common list.
    with_reference = totals.online_metrics(recs, watches, WINDOW, reference=(A, B))
    assert with_reference.loc[("v1", "control"), "personalisation"] == 1.0
    assert with_reference.loc[("v2", "treatment"), "personalisation"] == 1.0
    popular_given = totals.online_metrics(recs, watches, WINDOW, reference=popular)
    assert popular_given.loc[("v1", "control"), "personalisation"] == pytest.approx(60 / 98)


def test_personalisation_follows_each_users_latest_list(
    recs_frame: Callable[[Iterable[dict]], pd.DataFrame],
) -> None:
    popular = (D, C, B)
    recs = recs_frame(
        [
            {"t": 0, "user": 1, "movies": popular},
            {"t": 0, "user": 2, "movies": popular},
            {"t": 0, "user": 3, "movies": popular},
            {"t": 10, "user": 3, "movies": LIST},  # known now: a personal list
            {"t": 0, "user": 4, "movies": (A,)},
        ]
    )
    served = totals.served_lists(recs)
    table = totals.personalisation(served)
    assert table.loc[("v1", "control"), "users_served"] == 4
    assert table.loc[("v1", "control"), "personalisation"] == pytest.approx(0.5)
