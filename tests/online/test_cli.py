"""``python -m online`` (``online.__main__``): help, show before any run, run, show."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ingest.events import Watch

A = "alpha+2001"


def test_cli(job: Any, run_module: Callable[..., Any]) -> None:
    env = {"RECSYS_DATA_DIR": str(job.data_dir)}
    assert "show" in run_module(["-m", "online", "--help"], env).stdout
    assert run_module(["-m", "online", "show"], env).returncode == 1
    job.events([Watch(job.at(0), 1, A, 0)])
    job.log([(job.at(0), job.service_line(1, 200, job.at(0)))])
    env["REQUEST_LOG_PATH"] = str(job.data_dir / "requests.log")
    done = run_module(["-m", "online", "run"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["read"]["request_log_file_lines"] == 1
    shown = run_module(["-m", "online", "show"], env)
    assert json.loads(shown.stdout)["groups"][0]["requests"] == 1
