"""The gate: the decision rule both ways, and the whole registry flow on a simulated world
(refuse a weak model, promote the neural one, refuse a worse successor, publish production;
several candidates of one retrain: the best that passes, or in a dry run none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import redis

from contracts import rediskeys
from precompute import steps
from precompute.settings import Settings as PrecomputeSettings
from simulator.snapshots import simulated_snapshot
from training.gate import decide, gate, gate_best
from training.registry import ModelRegistry
from training.settings import Settings
from training.train import train

REPO = Path(__file__).resolve().parents[2]


def test_decide_promotes_a_candidate_that_keeps_up_and_beats_popularity() -> None:
    promoted, reasons = decide(0.30, 0.20, 0.295, tolerance=0.02, min_lift=0.10)
    assert promoted
    assert "clearly better than popularity" in reasons[0]
    assert "at least as good as production" in reasons[1]
    assert decide(0.30, 0.20, None)[0]  # nothing in production yet: popularity is the bar


@pytest.mark.parametrize(
    ("candidate", "popularity", "production", "why"),
    [
        (0.21, 0.20, None, "not clearly better than popularity"),  # +5% < +10%
        (0.30, 0.20, 0.31, "worse than production"),  # 0.30 < 0.31 * 0.98
        (0.10, 0.20, 0.05, "not clearly better than popularity"),
    ],
)
def test_decide_refuses(candidate: float, popularity: float, production, why: str) -> None:
    promoted, reasons = decide(candidate, popularity, production, tolerance=0.02, min_lift=0.10)
    assert not promoted
    assert any(why in reason for reason in reasons)


def test_tolerance_lets_a_slightly_lower_candidate_through() -> None:
    assert decide(0.300, 0.20, 0.305, tolerance=0.02)[0]
    assert not decide(0.300, 0.20, 0.305, tolerance=0.0)[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    simulated_snapshot(root, users=800, movies=400, days=90, seed=5)
    return root


def test_gate_refuses_promotes_and_keeps_production(data_dir: Path, redis_url: str) -> None:
    settings = Settings(data_dir=data_dir, svd_epochs=10, neural_device="cpu")
    registry = ModelRegistry(data_dir)

    weak = train("random", settings=settings)
    refused = gate(weak.version, settings)
    assert not refused.promoted
    assert refused.production_after is None and registry.production() is None
    assert refused.candidate_score < refused.popularity_score  # measured, not assumed
    assert any("not clearly better than popularity" in r for r in refused.reasons)

    neural = train("multdae", settings=settings)
    promoted = gate(neural.version, settings)
    assert promoted.promoted, promoted.reasons
    assert registry.production().version == neural.version
    assert promoted.candidate_score > 1.1 * promoted.popularity_score
    assert "no production model yet" in promoted.reasons

    # A worse model after it: the gate refits production's recipe on the same split,
    # refuses, and production stays. Through the CLI this time (exit status 3: refused).
    worse = train("svd", settings=settings)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RECSYS_DATA_DIR": str(data_dir),
        "NEURAL_DEVICE": "cpu",
        "SVD_EPOCHS": "10",
    }
    done = subprocess.run(
        [sys.executable, "-m", "training.gate", worse.version],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    decision = json.loads(done.stdout)
    assert not decision["promoted"]
    assert decision["production_before"] == decision["production_after"] == neural.version
    assert any("worse than production" in r for r in decision["reasons"])
    evaluation = registry.meta(worse.version).evaluation
    assert evaluation["production"]["how"] == "refitted on this split"
    assert evaluation["production"]["metrics"]["ndcg@20"] == pytest.approx(
        decision["production_score"]
    )
    assert registry.production().version == neural.version

    # Publishing without a version publishes production, not the newest (refused) model.
    report = steps.publish(
        None,
        PrecomputeSettings(
            data_dir=data_dir, redis_url=redis_url, block_size=256, publish_batch=500,
            keep_versions=2,
        ),
    )  # fmt: skip
    assert report.model_version == neural.version
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    meta = client.hgetall(rediskeys.meta(client.get(rediskeys.ACTIVE)))
    assert meta["algorithm"] == "multdae"

    # The log and the listing tell the story.
    log = [json.loads(line) for line in _cli("decisions", env=env).splitlines()]
    assert [(d["candidate"], d["promoted"]) for d in log] == [
        (weak.version, False),
        (neural.version, True),
        (worse.version, False),
    ]
    listed = [json.loads(line) for line in _cli("list", env=env).splitlines()]
    assert [m["version"] for m in listed if m["production"]] == [neural.version]
    assert all(m["metrics"]["ndcg@20"] >= 0 for m in listed)


def _cli(*argv: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "training", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout


def test_same_recipe_retrained_on_fresh_data_is_judged_against_popularity(
    data_dir: Path, tmp_path: Path
) -> None:
    """Production's recipe retrained: the candidate's figures stand for production's."""
    settings = Settings(data_dir=tmp_path, neural_device="cpu")
    (tmp_path / "snapshots").symlink_to(data_dir / "snapshots")
    first = train("multdae", settings=settings)
    assert gate(first.version, settings).promoted
    second = train("multdae", settings=settings)
    decision = gate(second.version, settings)
    assert decision.promoted, decision.reasons
    assert ModelRegistry(tmp_path).meta(second.version).evaluation["production"]["how"] == (
        "same recipe as the candidate"
    )
    assert ModelRegistry(tmp_path).production().version == second.version


def test_gate_best_promotes_the_best_candidate_that_passes_and_a_dry_run_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, svd_epochs=10, neural_device="cpu")
    (tmp_path / "snapshots").symlink_to(data_dir / "snapshots")
    registry = ModelRegistry(tmp_path)
    versions = [train(name, settings=settings).version for name in ("random", "svd", "multdae")]
    weak, svd, neural = versions

    rehearsal = gate_best(versions, dry_run=True, settings=settings)
    assert registry.production() is None
    assert registry.decisions() == [asdict(d) for d in rehearsal]  # one each, in order
    assert [d.candidate for d in rehearsal] == versions
    assert all(d.dry_run and not d.promoted and d.production_after is None for d in rehearsal)
    by_version = {d.candidate: d for d in rehearsal}
    assert not by_version[weak].passed
    assert any("not clearly better than popularity" in r for r in by_version[weak].reasons)
    assert [d.candidate for d in rehearsal if d.chosen] == [neural]
    assert by_version[neural].candidate_score > by_version[svd].candidate_score
    assert "dry run: would be promoted; production not moved" in by_version[neural].reasons

    decisions = gate_best(versions, settings=settings)
    assert registry.production().version == neural
    assert [d.promoted for d in decisions] == [False, False, True]
    assert all(d.production_before is None and d.production_after == neural for d in decisions)
    best = decisions[2]
    assert best.chosen and not best.dry_run
    assert "best of 3 candidates by ndcg@20" in best.reasons
    assert not decisions[1].passed  # SVD is no better than popularity on this world
    assert any("not clearly better than popularity" in r for r in decisions[1].reasons)
    assert len(registry.decisions()) == 6

    with pytest.raises(ValueError, match="no candidate"):
        gate_best([], settings=settings)
