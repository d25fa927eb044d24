"""The experiments' settings (``experiments.settings``): a bad value is named and refused
before anything runs; an empty one is the default."""

from __future__ import annotations

import pytest

from experiments.__main__ import main
from experiments.settings import Settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [("EXPERIMENT_ALPHA", "2"), ("EXPERIMENT_REPORT_BUCKET", "W"), ("BANDIT_DRAWS", "0")],
)
def test_a_bad_setting_is_named_and_refused_before_anything_runs(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exc:
        main(["status"])
    assert exc.value.code == 2 and variable in capsys.readouterr().err
    monkeypatch.setenv(variable, "")  # empty is unset: the documented default
    assert Settings.from_env().alpha == 0.05
