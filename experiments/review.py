"""The whole analysis of a stored experiment, and its report: what the CLI and a scheduled
task both call, so their verdicts cannot differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from contracts import ab
from experiments import bandit, store
from experiments.analysis import Analysis, analyze, timeline, user_outcomes
from experiments.definition import Experiment
from experiments.experiment_report import write_report
from experiments.settings import Settings


def read_outcomes(path: Path) -> pd.DataFrame:
    """An outcomes table from Parquet, or CSV (any other suffix); ``first_exposure`` is
    parsed by the analysis, so text times in a CSV are fine."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def experiment_named(client: store.Client, name: str | None) -> Experiment:
    """The named experiment, or the running one; ``store.RefusedError`` if there is none."""
    experiment = store.running(client) if name is None else store.load(client, name)
    if experiment is None:
        raise store.RefusedError(
            "no experiment is running" if name is None else f"no experiment named {name}"
        )
    return experiment


def analyze_outcomes(
    outcomes: pd.DataFrame, settings: Settings, control: str = ab.DEFAULT_VARIANT
) -> Analysis:
    """Every variant in the outcomes against ``control``, at the configured levels."""
    return analyze(outcomes, control, **_levels(settings))


def analyze_experiment(
    experiment: Experiment, outcomes: pd.DataFrame, settings: Settings
) -> Analysis:
    """Its variants only, users first exposed while it ran, at the configured levels."""
    return analyze(
        outcomes,
        experiment.control,
        **_levels(settings),
        variants=experiment.variants,
        since=experiment.started_at,
        until=experiment.stopped_at,
    )


def _levels(settings: Settings) -> dict[str, Any]:
    return {
        "alpha": settings.alpha,
        "mde": settings.mde,
        "power": settings.power,
        "looks": settings.looks,
        "resamples": settings.bootstrap,
        "seed": settings.seed,
    }


def report_experiment(
    experiment: Experiment, outcomes: pd.DataFrame, settings: Settings, out: Path
) -> tuple[Analysis, list[Path]]:
    """Analyse and write the report under ``out/<name>/``; the analysis and the files."""
    result = analyze_experiment(experiment, outcomes, settings)
    users, _ = user_outcomes(
        outcomes,
        variants=experiment.variants,
        since=experiment.started_at,
        until=experiment.stopped_at,
    )
    curves = timeline(users, settings.report_bucket)
    return result, write_report(experiment, result, curves, out)


def review_running(outcomes_path: Path, settings: Settings | None = None) -> dict[str, Any]:
    """What the scheduled task does after each online run: for the running experiment, one
    bandit step (bandit mode only) and then the analysis and report. Nothing runs: a no-op.
    No outcomes yet (the online job has closed no window): the split stays as it is."""
    settings = settings or Settings.from_env()
    client = store.connect(settings.redis_url, settings.redis_topology)
    try:
        experiment = store.running(client)
        if experiment is None:
            return {"experiment": None}
        if not outcomes_path.exists():
            return {"experiment": experiment.name, "outcomes": None}
        outcomes = read_outcomes(outcomes_path)
        result: dict[str, Any] = {"experiment": experiment.name}
        if experiment.mode == "bandit":
            experiment = bandit.step(
                client, outcomes, draws=settings.bandit_draws, seed=settings.seed
            )
            result["weights"] = dict(experiment.weights)
        analysis, files = report_experiment(experiment, outcomes, settings, settings.report_dir)
        result.update(
            verdict=analysis.verdict.label,
            converted={v.variant: f"{v.conversions}/{v.users}" for v in analysis.variants},
            files=[str(f) for f in files],
        )
        return result
    finally:
        client.close()
