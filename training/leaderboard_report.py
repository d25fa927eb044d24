"""The leaderboard for people: a markdown table and a PNG bar chart of the ranking metrics.

Input is the JSON object ``training.evaluate`` prints, so a report can be redrawn from a
saved result without refitting anything.
"""

from __future__ import annotations

import math
from pathlib import Path

COLUMNS = ("ndcg", "recall", "precision", "map", "hit")  # each @k
EXTRA = ("coverage", "diversity", "rmse", "mae", "fit_seconds")


def _cell(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def markdown(board: dict) -> str:
    """The leaderboard as a markdown table, best NDCG@k first, popularity as the yardstick."""
    k = board["k"]
    models = board["models"]
    ranked = sorted(models, key=lambda name: -models[name][f"ndcg@{k}"])
    popular = models.get("popularity", {}).get(f"ndcg@{k}")
    header = [
        "model",
        *(f"{c}@{k}" for c in COLUMNS),
        "vs popularity",
        *EXTRA,
    ]
    lines = [
        f"Leaderboard on {board.get('source', 'data')}: {board['users']} users with held-out "
        f"movies, k={k}.",
        "",
    ]
    if "served" in board:
        lines += [
            f"Served (what the gate would promote: the best NDCG@{k} at least "
            f"{board['gate']['min_lift']:+.0%} over popularity): {board['served'] or 'none'}.",
            "",
        ]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for name in ranked:
        m = models[name]
        lift = (
            f"{m[f'ndcg@{k}'] / popular - 1:+.0%}" if popular else "–"
        )  # NDCG@k relative to popularity
        cells = [
            name,
            *(_cell(m.get(f"{c}@{k}")) for c in COLUMNS),
            lift,
            *(_cell(m.get(c), 1 if c == "fit_seconds" else 4) for c in EXTRA),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(board: dict, path: Path) -> None:
    """Grouped bars: one group per ranking metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = board["k"]
    models = board["models"]
    names = sorted(models, key=lambda name: models[name][f"ndcg@{k}"])
    metrics = [f"{c}@{k}" for c in COLUMNS]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        values = [models[name][m] for m in metrics]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("mean over users")
    ax.set_title(f"Leaderboard: {board.get('source', '')}, {board['users']} users, k={k}")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(board: dict, directory: Path) -> list[Path]:
    """``leaderboard.md`` and ``leaderboard.png`` in ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    table, png = directory / "leaderboard.md", directory / "leaderboard.png"
    table.write_text(markdown(board))
    chart(board, png)
    return [table, png]
