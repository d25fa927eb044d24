"""Trained models on disk: ``models/<version>/`` with the artifact and a ``meta.json``.

A version appears through an atomic rename of a finished directory, so a reader never sees a
half-written model. The metadata says what produced it: algorithm, parameters, training
snapshot, code version, fit time, the tuning its parameters came from (``training.tune``: the
file, the chosen values and their validation scores; empty when they came from the settings)
and, once the gate's evaluation has run, its offline metrics and those of the yardsticks it
was judged against.

Beside the versions: ``production.json`` names the model production serves (moved only by
``training.gate``, by an atomic replace), and ``decisions.jsonl`` logs every gate decision
with its reasons, one JSON object a line, appended.
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from training.factors import FactorModel

META = "meta.json"
PRODUCTION = "production.json"
DECISIONS = "decisions.jsonl"


@dataclass(frozen=True)
class ModelMeta:
    version: str
    algorithm: str
    params: dict
    snapshot_id: str
    created_at: str
    code_version: str
    fit_seconds: float
    users: int
    items: int
    metrics: dict = field(default_factory=dict)  # the protocol's figures on its snapshot
    evaluation: dict = field(default_factory=dict)  # protocol, yardsticks' figures, split
    tuning: dict = field(default_factory=dict)  # training.tune's choice: params, validation


def code_version() -> str:
    """The git commit the code runs from, if it is a checkout (images set CODE_VERSION)."""
    if env := os.environ.get("CODE_VERSION"):
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class ModelRegistry:
    def __init__(self, root: Path):
        self.dir = root / "models"

    def save(
        self,
        model: FactorModel,
        *,
        params: dict,
        snapshot_id: str,
        fit_seconds: float,
        tuning: dict | None = None,
    ) -> ModelMeta:
        now = datetime.now(UTC)
        version = f"{model.algorithm}-{now:%Y%m%dT%H%M%S%f}"
        meta = ModelMeta(
            version=version,
            algorithm=model.algorithm,
            params=params,
            snapshot_id=snapshot_id,
            created_at=now.isoformat(),
            code_version=code_version(),
            fit_seconds=round(fit_seconds, 3),
            users=len(model.user_ids),
            items=len(model.item_ids),
            tuning=tuning or {},
        )
        tmp = self.dir / f".tmp-{version}"
        tmp.mkdir(parents=True)
        model.save(tmp)
        (tmp / META).write_text(json.dumps(asdict(meta), indent=2) + "\n")
        os.replace(tmp, self.dir / version)
        return meta

    def list(self) -> list[ModelMeta]:
        """Every model, oldest first."""
        if not self.dir.exists():
            return []
        metas = [
            ModelMeta(**json.loads((p / META).read_text()))
            for p in self.dir.iterdir()
            if (p / META).exists() and not p.name.startswith(".")
        ]
        return sorted(metas, key=lambda m: m.created_at)

    def meta(self, version: str | None = None) -> ModelMeta:
        if version is None:
            metas = self.list()
            if not metas:
                raise FileNotFoundError(f"no trained model in {self.dir}")
            return metas[-1]
        path = self.dir / version / META
        if not path.exists():
            raise FileNotFoundError(f"no model {version} in {self.dir}")
        return ModelMeta(**json.loads(path.read_text()))

    def load(self, version: str | None = None) -> tuple[FactorModel, ModelMeta]:
        meta = self.meta(version)
        return FactorModel.load(self.dir / meta.version), meta

    def record_evaluation(self, version: str, metrics: dict, evaluation: dict) -> ModelMeta:
        """Add the offline evaluation to a model's metadata (the artifact never changes)."""
        meta = self.meta(version)
        updated = ModelMeta(**{**asdict(meta), "metrics": metrics, "evaluation": evaluation})
        _write_atomic(self.dir / version / META, json.dumps(asdict(updated), indent=2) + "\n")
        return updated

    def production(self) -> ModelMeta | None:
        """The model production serves, or None before the gate ever promoted one."""
        path = self.dir / PRODUCTION
        if not path.exists():
            return None
        return self.meta(json.loads(path.read_text())["version"])

    def set_production(self, version: str) -> None:
        """Point production at ``version``: one atomic replace of ``production.json``."""
        self.meta(version)  # it must exist
        pointer = {"version": version, "since": datetime.now(UTC).isoformat()}
        _write_atomic(self.dir / PRODUCTION, json.dumps(pointer) + "\n")

    def log_decision(self, decision: dict) -> None:
        """Append one gate decision to the log (a single write of one line)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / DECISIONS).open("a") as log:
            log.write(json.dumps(decision) + "\n")

    def decisions(self) -> builtins.list[dict]:
        """Every gate decision, oldest first."""
        path = self.dir / DECISIONS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
