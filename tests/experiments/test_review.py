"""A stored experiment's review (``experiments.review``) and its report
(``experiments.experiment_report``): the verdict, the cumulative curves and the PNG plots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import redis

from experiments import analysis, bandit, experiment_report, review, store
from experiments.definition import Experiment
from experiments.settings import Settings

T0 = datetime(2025, 3, 1, tzinfo=UTC)  # where outcomes_frame's exposures start
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_report_has_the_verdict_and_png_plots(
    published: redis.Redis, tmp_path: Path, outcomes_frame: Callable[..., pd.DataFrame]
) -> None:
    experiment = Experiment(
        "report-me", {"control": "v1", "treatment": "v2"}, {"control": 1, "treatment": 1}, "bandit"
    )
    store.start(published, experiment, now=T0)
    outcomes = outcomes_frame({"control": 0.10, "treatment": 0.14}, 5000)
    bandit.step(published, outcomes, draws=2000, now=T0 + timedelta(days=1))
    running = store.running(published)
    settings_ = Settings(report_dir=tmp_path)
    result, files = review.report_experiment(running, outcomes, settings_, tmp_path)
    assert result.verdict.label == "winner: treatment"
    users, _ = analysis.user_outcomes(outcomes, since=T0)
    curves = analysis.timeline(users, "D")
    assert (curves.groupby("variant")["users"].diff().dropna() > 0).all()  # cumulative
    last = curves.groupby("variant").last()
    assert last["users"].tolist() == [v.users for v in result.variants]
    assert last["conversions"].tolist() == [v.conversions for v in result.variants]
    assert ((curves["low"] <= curves["rate"]) & (curves["rate"] <= curves["high"])).all()
    directory = tmp_path / "report-me"
    assert {f.name for f in files} == {
        experiment_report.MARKDOWN,
        experiment_report.CONVERSION_PNG,
        experiment_report.SPLIT_PNG,
    }
    for name in (experiment_report.CONVERSION_PNG, experiment_report.SPLIT_PNG):
        png = (directory / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    text = (directory / experiment_report.MARKDOWN).read_text()
    assert "**Verdict: winner: treatment**" in text
    assert "| treatment | v2 |" in text and "![conversion.png](conversion.png)" in text
