"""The online DAG (``dags/recsys_online.py``) as the scheduler loads it, run with
``dag.test()`` by the project's runner in its own process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from online import online_report


def test_dag_runs_the_job_and_writes_the_report(
    tmp_path: Path, redis_url: str, job: Any, run_module: Callable[..., Any]
) -> None:
    """The DAG as the scheduler loads it from dags/ (every file there must import cleanly),
    run with dag.test() by the project's runner in its own process."""
    data = tmp_path / "data"
    job.on(data).simulate(days=2, seed=4)
    env = {
        "RECSYS_DATA_DIR": str(data),
        "REQUEST_LOG_PATH": str(data / "requests.log"),
        "RECSYS_TASK_RETRIES": "0",
        "REDIS_URL": redis_url,  # the experiment task finds none running: a no-op
    }
    home = str(tmp_path / "airflow")
    argv = ["-m", "devstack.retrain", "--dag", "recsys_online", "--airflow-home", home]
    described = run_module([*argv, "--describe"], env)
    assert described.returncode == 0, described.stderr[-3000:]
    assert json.loads(described.stdout.splitlines()[-1])["tasks"] == {
        "evaluate": ["experiment"],
        "experiment": [],
    }
    done = run_module(argv, env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["state"] == "success"
    document = json.loads((data / "online" / online_report.METRICS_JSON).read_text())
    assert document["runs"] == 1
    assert {g["variant"] for g in document["groups"]} == {"control", "treatment", "stream", "none"}
    assert (data / "online" / online_report.REPORT_MD).read_text().startswith("# Online evaluation")
