"""``make eval-served`` on a small ratings file: the events before a global cut replayed
through the real broker and consumer, the retrain DAG (dag.test), gunicorn answering every
user with new movies after the cut, and the leaderboard on the same split
(``devstack/eval_served.py``). The pipeline adds nothing to what the leaderboard measures,
so on this deterministic case the service answers every user with exactly the list the
promoted model gives offline."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from devstack.eval_served import DEFAULT_MODELS

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"served_ndcg@20", "offline_ndcg@20", "users", "model"}


def write_ratings(path: Path, users: int = 150, movies: int = 90, seed: int = 5) -> Path:
    """A MovieLens ``u.data`` (user, movie, stars, unix time; tab-separated) with taste
    groups, so a model has something to learn: each user rates 12 to 30 movies, four in
    five from their group's third of the catalogue, the more popular ones more often. Users
    join over 60 days and rate one movie every few hours, so the cut at 80% of the events
    leaves some users with nothing before it (cold starts) and many with movies on both
    sides."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, movies + 1) ** 0.7
    group_of = np.arange(movies) % 3
    start = 880_000_000
    lines = []
    for user in range(1, users + 1):
        group = user % 3
        weight = popularity * np.where(group_of == group, 4.0, 0.25)
        count = int(rng.integers(12, 31))
        chosen = rng.choice(movies, size=count, replace=False, p=weight / weight.sum())
        time = start + int(rng.integers(0, 60 * 86_400))
        for movie in chosen:
            time += int(rng.integers(600, 6 * 3600))
            stars = int(np.clip(rng.normal(4.0 if group_of[movie] == group else 2.5, 0.8), 1, 5))
            lines.append(f"{user}\t{movie + 1}\t{stars}\t{time}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_served_quality_equals_offline(
    tmp_path: Path, redis_url: str, bootstrap: str, topic: str
) -> None:
    ratings = write_ratings(tmp_path / "u.data")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # A small world: a quicker fit, and the gate's margin over popularity relaxed as for
        # the other small DAG runs (devstack.airflow.QUICK_ENV); the DAG and the leaderboard
        # both read these, so they still train the same models.
        "SVD_EPOCHS": "10",
        "NEURAL_EPOCHS": "20",
        "GATE_MIN_LIFT": "-0.5",
    }
    argv = [sys.executable, "-m", "devstack.eval_served", "--ratings", str(ratings)]
    argv += ["--redis-url", redis_url, "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--data-dir", str(tmp_path / "data"), "--workers", "1"]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.keys() >= KEYS
    assert result["model"] in DEFAULT_MODELS  # what the DAG trained and its gate promoted
    assert result["users"] > 20
    assert 0 < result["cold_users"] < result["users"]
    assert result["sources"] == {
        "cold_start": result["cold_users"],
        "personal": result["users"] - result["cold_users"],
    }
    assert result["same_training_data"] and result["same_recipe"]
    assert abs(result["served_ndcg@20"] - result["offline_ndcg@20"]) <= 0.05 * abs(
        result["offline_ndcg@20"]
    )
    # Deterministic here (seeded, one thread): not just close, the same lists.
    assert result["same_lists"] == result["users"]
    assert result["served_ndcg@20"] == result["offline_ndcg@20"] == result["artifact_ndcg@20"]


def test_it_trains_what_the_retrain_dag_trains_by_default() -> None:
    """The run passes its models to the DAG and the leaderboard alike; by default they are
    the DAG's own default candidates (read from the DAG file, which imports nothing heavy)."""
    tree = ast.parse((ROOT / "dags" / "recsys_retrain.py").read_text())
    dag_default = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "DEFAULT_MODELS" for t in node.targets)
    )
    assert dag_default == DEFAULT_MODELS
