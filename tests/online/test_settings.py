"""The online job's settings (``online.settings``) from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from contracts import ab
from online.settings import Settings

A, B = "alpha+2001", "beta+2002"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_DATA_DIR", "/data")
    for name in ["ONLINE_WINDOW_HOURS", "ONLINE_STREAM_SPLIT", "REQUEST_LOG_PATH"]:
        monkeypatch.delenv(name, raising=False)
    default = Settings.from_env()
    assert (default.data_dir, default.out_dir, default.window, default.dedup) == (
        Path("/data"),
        Path("/data/online"),
        timedelta(hours=24),
        timedelta(seconds=60),
    )
    assert default.stream_assign() is None and default.request_log_paths == ()
    monkeypatch.setenv("ONLINE_WINDOW_HOURS", "2.5")
    monkeypatch.setenv("ONLINE_STREAM_SPLIT", "control=1, treatment=1")
    monkeypatch.setenv("REQUEST_LOG_PATH", "/logs/a.log, /logs/b-*.log")
    monkeypatch.setenv("ONLINE_REFERENCE_LIST", f"{A},{B}")
    custom = Settings.from_env()
    assert custom.window == timedelta(hours=2.5)
    assert custom.request_log_paths == ("/logs/a.log", "/logs/b-*.log")
    assert custom.reference_list == (A, B)
    split = ab.parse_split({"control": "1", "treatment": "1"})
    assert [custom.stream_assign()(u) for u in range(50)] == [split.assign(u) for u in range(50)]
    monkeypatch.setenv("ONLINE_WINDOW_HOURS", "0")
    with pytest.raises(ValueError, match="ONLINE_WINDOW_HOURS"):
        Settings.from_env()
