"""``python -m online`` (``online.__main__``): help, show before any run, run, show."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.events import Watch

A = "alpha+2001"


def test_cli(
    tmp_path: Path,
    at: Callable[[float], datetime],
    service_line: Callable[..., bytes],
    write_segment: Callable[..., int],
    event_lines: Callable[[Iterable[Any]], list[bytes]],
    append_log: Callable[[Path, list[tuple[datetime, bytes]]], None],
    run_module: Callable[..., Any],
) -> None:
    env = {"RECSYS_DATA_DIR": str(tmp_path)}
    assert "show" in run_module(["-m", "online", "--help"], env).stdout
    assert run_module(["-m", "online", "show"], env).returncode == 1
    write_segment(tmp_path, event_lines([Watch(at(0), 1, A, 0)]))
    append_log(tmp_path, [(at(0), service_line(1, 200, at(0)))])
    env["REQUEST_LOG_PATH"] = str(tmp_path / "requests.log")
    done = run_module(["-m", "online", "run"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["read"]["request_log_file_lines"] == 1
    shown = run_module(["-m", "online", "show"], env)
    assert json.loads(shown.stdout)["groups"][0]["requests"] == 1
