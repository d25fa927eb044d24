"""An experiment's analysis (``experiments.analysis``): a planted effect is found and a
planted harm stops, alpha is split over treatments and looks, and the user-level input counts
each user once, in the window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from experiments import analysis

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def test_a_planted_effect_is_detected_and_a_planted_harm_stops(
    outcomes_frame: Callable[..., pd.DataFrame],
) -> None:
    better = analysis.analyze(outcomes_frame({"control": 0.10, "treatment": 0.14}, 5000))
    (comparison,) = better.comparisons
    assert better.verdict.label == "winner: treatment"
    assert comparison.outcome == "better"
    assert comparison.z_low < 0.04 < comparison.z_high
    assert comparison.p_value < 1e-4
    assert [v.users for v in better.variants] == [5000, 5000]
    worse = analysis.analyze(outcomes_frame({"control": 0.14, "treatment": 0.10}, 5000))
    assert worse.verdict.label == "stop: treatment is worse"
    assert worse.comparisons[0].z_high < 0


def counts_frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Exactly ``converted`` of ``users`` per variant, all exposed at T0."""
    rows, first = [], 1
    for variant, (users, converted) in counts.items():
        rows.append(
            pd.DataFrame(
                {
                    "user": np.arange(first, first + users),
                    "variant": variant,
                    "first_exposure": pd.Timestamp(T0).tz_localize(None),
                    "converted": np.arange(users) < converted,
                }
            )
        )
        first += users
    return pd.concat(rows, ignore_index=True)


def test_alpha_is_split_over_treatments_and_looks() -> None:
    """p between alpha/6 and alpha: significant for one look at one treatment, not for two
    treatments at three looks; the planned sample grows with the stricter level."""
    frame = counts_frame({"control": (6000, 600), "t1": (6000, 672), "t2": (6000, 600)})
    once = analysis.analyze(frame, variants=["t1"])
    assert once.alpha_per_test == 0.05
    assert 0.05 / 6 < once.comparisons[0].p_value < 0.05
    assert once.verdict.label == "winner: t1"
    careful = analysis.analyze(frame, looks=3)
    assert careful.alpha_per_test == pytest.approx(0.05 / 6)
    assert careful.verdict.label != "winner: t1"
    assert careful.comparisons[0].required_users > once.comparisons[0].required_users


# --- the user-level input -------------------------------------------------------------------


def test_users_count_once_bad_rows_are_dropped_and_the_window_applies() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 1, 2, 3, 4, None, 6, 7],
            "variant": ["treatment", "control", "control", "Bad Name", "control", "control",
                        "control", "treatment"],
            "first_exposure": pd.to_datetime(
                ["2025-03-02", "2025-03-01", "2025-03-01", "2025-03-01", "2025-02-01",
                 "2025-03-01", "not a time", "2025-03-03"],
                errors="coerce",
            ),
            "converted": [True, False, True, True, True, True, True, False],
        }
    )  # fmt: skip
    users, dropped = analysis.user_outcomes(frame, since=T0)
    assert users.set_index("user")["variant"].to_dict() == {
        1: "control",  # met control first; the later treatment row does not count
        2: "control",
        7: "treatment",
    }
    assert dropped == {"unusable_rows": 3, "outside_window": 1, "later_variant_rows": 1}
    with pytest.raises(ValueError, match="converted"):
        analysis.analyze(frame.drop(columns=["converted"]))
