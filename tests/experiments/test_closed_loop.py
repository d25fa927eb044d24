"""The closed loop of issue 9, small: simulated app users call the real service (gunicorn),
their reactions flow through Kafka into the journal, the online job joins them with the
service's request log, and the experiment analysis and bandit act on the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_good_model_wins_and_the_bandit_moves_traffic_to_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "devstack.experiment", "--data-dir", str(tmp_path)]
    argv += ["--users", "600", "--movies", "300", "--days", "45", "--visits", "500"]
    argv += ["--rounds", "3"]
    done = subprocess.run(argv, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())

    fixed = summary["experiments"]["neural-vs-random-fixed"]
    assert fixed["verdict"] == "winner: neural"
    assert fixed["split_history"] == [{"control": 50, "neural": 50}]  # fixed: never moved
    rates = {v["variant"]: v["rate"] for v in fixed["analysis"]["variants"]}
    assert rates["neural"] > rates["control"] + 0.1
    (comparison,) = fixed["analysis"]["comparisons"]
    assert comparison["p_value"] < 0.05

    bandit = summary["experiments"]["neural-vs-random-bandit"]
    first, *_, last = bandit["split_history"]
    assert first == {"control": 50, "neural": 50}
    share = last["neural"] / sum(last.values())
    assert share > 0.8, bandit["split_history"]  # most traffic moved to the better arm
    assert last["control"] / sum(last.values()) >= 0.05  # the exploration floor holds

    for name in ("neural-vs-random-fixed", "neural-vs-random-bandit"):
        folder = tmp_path / "experiments" / name
        assert "winner: neural" in (folder / "report.md").read_text()
        assert (folder / "conversion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "experiments" / "neural-vs-random-bandit" / "split.png").exists()
    online = (tmp_path / "online" / "report.md").read_text()
    assert summary["versions"]["neural"] in online and summary["versions"]["control"] in online
