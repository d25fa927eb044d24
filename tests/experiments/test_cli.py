"""``python -m experiments`` (``experiments.__main__``) against a real Redis: an
experiment run end to end, and each refusal an exit 1 saying why."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from contracts import rediskeys
from experiments.__main__ import main


def test_cli_runs_an_experiment_end_to_end(
    published: redis.Redis,
    cli_redis: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    outcomes_frame: Callable[..., pd.DataFrame],
) -> None:

    def cli(*argv: str) -> dict:
        assert main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "bandit-step" in capsys.readouterr().out
    started = cli("start", "cli-exp", "--variant", "control=active", "--variant", "treatment=v2")
    assert started["variants"] == {"control": "v1", "treatment": "v2"}
    assert started["weights"] == {"control": 1, "treatment": 1}
    assert cli("split", "--weight", "control=3", "--weight", "treatment=1")["weights"] == {
        "control": 3,
        "treatment": 1,
    }
    assert cli("status")["running"]["name"] == "cli-exp"
    path = tmp_path / "outcomes.csv"
    # exposures after the start (the CLI started it now), so the window keeps them
    outcomes_frame(
        {"control": 0.10, "treatment": 0.10}, 400, start=datetime.now(UTC) + timedelta(minutes=1)
    ).to_csv(path, index=False)
    analysed = cli("analyze", str(path), "--experiment", "cli-exp")
    assert analysed["verdict"] == "no difference yet"
    assert [v["users"] for v in analysed["variants"]] == [400, 400]
    assert cli("analyze", str(path), "--alpha", "0.01")["alpha_per_test"] == 0.01
    files = cli("report", str(path), "--out", str(tmp_path / "reports"))["files"]
    assert Path(files[0]).read_text().count("no difference yet") >= 1
    assert cli("stop")["stopped"]["status"] == "stopped"
    assert published.exists(rediskeys.SPLIT, rediskeys.VARIANT_VERSIONS) == 0
    assert main(["bandit-step", str(path)]) == 1
    assert "no experiment is running" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in capsys.readouterr().err
    assert main(["analyze", str(path), "--alpha", "2"]) == 1
    assert "alpha" in capsys.readouterr().err
    path.write_text("user,variant\n1,control\n")
    assert main(["analyze", str(path)]) == 1
    assert "lack columns" in capsys.readouterr().err
