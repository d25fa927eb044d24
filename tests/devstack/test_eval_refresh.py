"""``make eval-refresh`` on a small ratings file: the events before a global cut published
through the broker, consumer and retrain DAG, the service and the refresher running, the
events after the cut sent one at a time, each scored answer read from the service once the
refresher's marks have passed what was sent (``devstack/eval_refresh.py``); and the
function-level replay (``--offline``) giving the same figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.eval_refresh import evaluate_offline
from tests.devstack.test_eval_served import write_ratings

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("ndcg@20", "recall@20")


def test_the_refresher_through_the_service_against_the_published_lists(
    tmp_path: Path, redis_url: str, bootstrap: str, topic: str
) -> None:
    ratings = write_ratings(tmp_path / "u.data")
    # A small world: the gate's margin over popularity relaxed (devstack.airflow.QUICK_ENV).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATE_MIN_LIFT": "-0.5"}
    argv = [sys.executable, "-m", "devstack.eval_refresh", "--ratings", str(ratings)]
    argv += ["--redis-url", redis_url, "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--data-dir", str(tmp_path / "data"), "--workers", "1", "--sample", "60"]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    live = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(live))
    assert live["path"] == "service" and live["events"] == 60
    # The refresher kept up every time: before each scored answer, and after the last event.
    assert live["timeouts"] == 0 and live["waits"] == 61
    assert 0 < live["cold_start_users"] < live["users"]
    for figure in FIGURES:
        assert 0 <= live[f"without_refresher_{figure}"] <= 1
        assert 0 <= live[f"with_refresher_{figure}"] <= 1
    # Users' events after the cut changed what the service answers them ...
    assert live["answers_changed"] > 10
    assert live["sources_with_refresher"].get("personal", 0) > 0
    assert live["refresher"]["refreshed"] > 0
    # ... and it answers what the refresher's own functions give for those histories.
    offline = evaluate_offline(ratings, train_share=0.8, sample=60, min_history=3)
    same = ("events", "users", "cold_start_users", "answers_changed")
    assert {k: offline[k] for k in same} == {k: live[k] for k in same}
    for figure in FIGURES:
        for side in ("with", "without"):
            key = f"{side}_refresher_{figure}"
            assert abs(offline[key] - live[key]) <= 0.002, (key, offline, live)
