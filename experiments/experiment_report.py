"""An experiment's report for people: markdown with the verdict and the tables, and PNG
plots of each variant's cumulative conversion with its interval over time (plus the split
over time when it changed, as a bandit's does).

Written to ``<out>/<experiment name>/`` (``report.md``, ``conversion.png``, ``split.png``),
replacing the previous report of the same experiment, so a scheduled task keeps one
current report per experiment.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from experiments.analysis import INTERVAL, Analysis
from experiments.definition import Experiment

MARKDOWN = "report.md"
CONVERSION_PNG = "conversion.png"
SPLIT_PNG = "split.png"


def conversion_chart(curves: pd.DataFrame, path: Path, title: str) -> None:
    """Each variant's cumulative per-user conversion (``analysis.timeline``) with a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    try:
        for variant, curve in curves.groupby("variant", sort=True):
            line = ax.plot(curve["time"], curve["rate"], marker="o", label=variant)[0]
            ax.fill_between(
                curve["time"], curve["low"], curve["high"], alpha=0.2, color=line.get_color()
            )
        ax.set_title(title)
        ax.set_xlabel("users first exposed by (UTC)")
        ax.set_ylabel(f"users converted (cumulative, {INTERVAL:.0%} interval)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.grid(alpha=0.3)
        if not curves.empty:
            ax.legend(loc="best")
        fig.autofmt_xdate()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def split_chart(experiment: Experiment, path: Path) -> None:
    """Each variant's share of traffic over time, from the split history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = experiment.stopped_at or datetime.now(UTC)
    times = [change.at for change in experiment.history] + [end]
    fig, ax = plt.subplots(figsize=(9, 3.5), layout="constrained")
    try:
        for variant in sorted(experiment.variants):
            shares = [
                change.weights[variant] / sum(change.weights.values())
                for change in experiment.history
            ]
            # Datetimes plot through matplotlib's units; its stubs type x as numeric ArrayLike.
            ax.step(times, [*shares, shares[-1]], where="post", label=variant)  # type: ignore[arg-type]
        ax.set_title(f"{experiment.name}: split over time ({experiment.mode})")
        ax.set_ylabel("share of users")
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.autofmt_xdate()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def markdown(experiment: Experiment, analysis: Analysis, images: list[str]) -> str:
    """The report's text: verdict first, then the arms, the comparisons and the rule."""
    weights_total = sum(experiment.weights.values())
    lines = [
        f"# Experiment {experiment.name}",
        "",
        f"**Verdict: {analysis.verdict.label}** — {analysis.verdict.reason}.",
        "",
        f"Status {experiment.status}, {experiment.mode} split"
        + (f" (floor {experiment.floor:.0%} per arm)" if experiment.mode == "bandit" else "")
        + f"; started {_when(experiment.started_at)}, stopped {_when(experiment.stopped_at)}.",
        "",
        f"| variant | version | share now | users | converted | rate | {INTERVAL:.0%} interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in analysis.variants:
        weight = experiment.weights.get(arm.variant)
        share = "–" if weight is None else f"{weight / weights_total:.1%}"
        lines.append(
            f"| {arm.variant} | {experiment.variants.get(arm.variant, '–')} | {share} | "
            f"{arm.users} | {arm.conversions} | {_pct(arm.rate)} | "
            f"{_pct(arm.low)} – {_pct(arm.high)} |"
        )
    level = 1 - analysis.alpha_per_test
    lines += [
        "",
        f"Each treatment minus {analysis.control}, intervals at {level:.4g}:",
        "",
        "| treatment | difference | z interval | bootstrap interval | p-value | "
        "planned users per arm | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in analysis.comparisons:
        lines.append(
            f"| {c.variant} | {_pp(c.diff)} | {_pp(c.z_low)} … {_pp(c.z_high)} | "
            f"{_pp(c.boot_low)} … {_pp(c.boot_high)} | {_p(c.p_value)} | "
            f"{c.required_users if c.required_users is not None else '–'} | {c.outcome} |"
        )
    lines += [
        "",
        f"Rule: users are the unit (each counted once, in the variant they met first). "
        f"Alpha {analysis.alpha} is split over {len(analysis.comparisons)} treatment(s) and "
        f"{analysis.looks} planned look(s) (Bonferroni: {analysis.alpha_per_test:.4g} per "
        f"test); looking more often than planned inflates the false-positive rate. A winner "
        f"needs p below that and the users per arm planned to detect "
        f"{analysis.mde * 100:.2f} percentage points with power {analysis.power:.0%}; a "
        f"significantly worse "
        f"treatment is a stop at any look.",
        "",
    ]
    if any(analysis.dropped.values()):
        dropped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in analysis.dropped.items())
        lines += [f"Rows left out: {dropped}.", ""]
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def write_report(
    experiment: Experiment, analysis: Analysis, curves: pd.DataFrame, out: Path
) -> list[Path]:
    """Write the markdown and the plots under ``out/<name>/``; returns the files written."""
    directory = out / experiment.name
    directory.mkdir(parents=True, exist_ok=True)
    images = [CONVERSION_PNG]
    conversion_chart(
        curves, directory / CONVERSION_PNG, f"{experiment.name}: conversion per variant"
    )
    if experiment.history and (len(experiment.history) > 1 or experiment.mode == "bandit"):
        split_chart(experiment, directory / SPLIT_PNG)
        images.append(SPLIT_PNG)
    else:
        (directory / SPLIT_PNG).unlink(missing_ok=True)
    text = directory / MARKDOWN
    partial = text.with_suffix(".md.partial")
    partial.write_text(markdown(experiment, analysis, images))
    partial.replace(text)  # a reader never sees half a report
    return [text, *(directory / name for name in images)]


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2%}"


def _pp(value: float) -> str:
    """A difference of rates in percentage points."""
    return "–" if math.isnan(value) else f"{value * 100:+.2f} pp"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"
