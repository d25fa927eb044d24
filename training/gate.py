"""The gate before production: a new model is served only if the evaluation says it is no worse.

Two steps, both recorded in the registry:

1. ``evaluate_candidate``: run the evaluation protocol (``training.evaluate``) on the
   candidate's own training snapshot for three recipes on the same split: the candidate's,
   popularity's, and the current production model's (its algorithm and parameters, refitted
   on this split). Refitting is what makes the comparison fair: the production artifact was
   trained on an older snapshot that may contain this split's held-out movies, and figures
   measured on another snapshot's split are not comparable. When production has the
   candidate's very recipe the candidate's figures stand for both (a daily retrain of the
   same model compares equal and passes on its lift over popularity alone).
2. ``gate``: promote (move ``production.json``) only if the candidate's NDCG@k is
   - at least production's, less a relative tolerance (GATE_TOLERANCE, default 2%), and
   - clearly above popularity's: by a relative margin (GATE_MIN_LIFT, default 10%; a
     negative margin only makes sense for toy worlds too small for any model to beat
     popularity, such as the end-to-end test's).
   Otherwise production stays where it is. Either way the decision and its reasons are
   appended to the decision log.

A retrain trains several models side by side; ``gate_best`` judges each candidate that way
and promotes only the one with the highest NDCG@k among those that pass (or, in a dry run,
none, saying which it would have been), logging one decision per candidate.

``python -m training.gate VERSION`` does both for one model and prints the decision;
``python -m training decisions`` shows the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TypeVar

from training.registry import ModelMeta, ModelRegistry
from training.settings import Settings

log = logging.getLogger(__name__)

GATE_METRIC = "ndcg"  # @k

T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    candidate: str
    promoted: bool
    metric: str
    candidate_score: float
    popularity_score: float
    production_before: str | None
    production_score: float | None
    production_after: str | None
    tolerance: float
    min_lift: float
    reasons: list[str]
    decided_at: str
    passed: bool = False  # it met the bar
    chosen: bool = False  # it passed and scored highest of the run's candidates
    dry_run: bool = False  # then nothing was promoted: ``chosen`` says what would have been


def decide(
    candidate: float,
    popularity: float,
    production: float | None,
    *,
    metric: str = "ndcg@20",
    tolerance: float = 0.02,
    min_lift: float = 0.10,
) -> tuple[bool, list[str]]:
    """Whether a candidate with these scores may replace production, and why (or why not)."""
    reasons = []
    floor = popularity * (1 + min_lift)
    beats_popularity = candidate >= floor
    reasons.append(
        f"{metric} {candidate:.4f} {'>=' if beats_popularity else '<'} popularity "
        f"{popularity:.4f} x {1 + min_lift:.2f} = {floor:.4f}: "
        + (
            "clearly better than popularity"
            if beats_popularity
            else "not clearly better than popularity"
        )
    )
    if production is None:
        keeps_up = True
        reasons.append("no production model yet")
    else:
        bar = production * (1 - tolerance)
        keeps_up = candidate >= bar
        reasons.append(
            f"{metric} {candidate:.4f} {'>=' if keeps_up else '<'} production {production:.4f} "
            f"x {1 - tolerance:.2f} = {bar:.4f}: "
            + ("at least as good as production" if keeps_up else "worse than production")
        )
    return beats_popularity and keeps_up, reasons


def best_passing(
    candidates: Iterable[T], passed: Callable[[T], bool], score: Callable[[T], float]
) -> T | None:
    """Of the candidates that passed, the one with the highest score (on a tie, the first
    given); None if none passed. ``gate_best``'s choice, and the leaderboard's ``served``."""
    return max((c for c in candidates if passed(c)), key=score, default=None)


def served_choice(
    scores: Mapping[str, float],
    popularity: float,
    *,
    metric: str = "ndcg@20",
    min_lift: float = 0.10,
) -> str | None:
    """The model the gate would promote among candidates with these ``scores`` (of the gate
    metric, measured on one split) when no model is in production yet: the best of those
    ``decide`` lets through, that is, clearly above ``popularity``; None if none is."""
    passed = {
        name: decide(score, popularity, None, metric=metric, min_lift=min_lift)[0]
        for name, score in scores.items()
    }
    return best_passing(scores, passed.__getitem__, scores.__getitem__)


def evaluate_candidate(version: str, settings: Settings | None = None) -> ModelMeta:
    """Evaluate a registered model against popularity and production on its snapshot's
    split (see the module doc) and record the figures in its metadata."""
    from ingest.snapshot import open_store
    from training.evaluate import fit_and_evaluate
    from training.history import History
    from training.popularity import Popularity
    from training.split import temporal_split
    from training.train import ALGORITHMS, make_algorithm

    settings = settings or Settings.from_env()
    registry = ModelRegistry(settings.data_dir)
    meta = registry.meta(version)
    history = History.from_snapshot(open_store(settings.data_dir).load(meta.snapshot_id))
    split = temporal_split(
        history,
        test_share=settings.eval_test_share,
        min_interactions=settings.eval_min_interactions,
    )
    if len(split.test_users) == 0:
        raise ValueError(f"snapshot {meta.snapshot_id} has no user to evaluate on")
    k, seed = settings.eval_k, settings.seed

    def run(algorithm: str, params: dict) -> dict:
        return fit_and_evaluate(make_algorithm(algorithm, settings, params), split, k, seed)

    metrics = run(meta.algorithm, meta.params)
    popularity = metrics if meta.algorithm == Popularity.name else run(Popularity.name, {})
    production = registry.production()
    against = None
    if production is not None:
        same = (production.algorithm, production.params) == (meta.algorithm, meta.params)
        if same:
            figures, how = metrics, "same recipe as the candidate"
        elif production.algorithm in ALGORITHMS:
            figures, how = run(production.algorithm, production.params), "refitted on this split"
        else:  # its algorithm is gone from the code: only its recorded figures are left
            figures, how = production.metrics, f"recorded on snapshot {production.snapshot_id}"
        against = {
            "version": production.version,
            "algorithm": production.algorithm,
            "how": how,
            "metrics": figures,
        }
    evaluation = {
        "snapshot_id": meta.snapshot_id,
        "k": k,
        "users": len(split.test_users),
        "test_share": settings.eval_test_share,
        "min_interactions": settings.eval_min_interactions,
        "popularity": popularity,
        "production": against,
        "evaluated_at": datetime.now(UTC).isoformat(),
    }
    return registry.record_evaluation(version, metrics, evaluation)


@dataclass(frozen=True)
class _Verdict:
    """One candidate judged on its own evaluation, before the candidates are compared."""

    meta: ModelMeta
    metric: str
    passed: bool
    reasons: list[str]
    production_score: float | None

    @property
    def score(self) -> float:
        return self.meta.metrics[self.metric]


def _judge(
    registry: ModelRegistry, version: str, current: ModelMeta | None, settings: Settings
) -> _Verdict:
    """Whether ``version`` may replace production ``current``, evaluating it first if it
    has not been, or afresh if production moved since it was."""
    meta = registry.meta(version)
    if not meta.metrics:
        meta = evaluate_candidate(version, settings)
    metric = f"{GATE_METRIC}@{meta.evaluation['k']}"
    if current is not None and current.version == version:
        reasons = [f"{version} is already the production model"]
        return _Verdict(meta, metric, True, reasons, meta.metrics[metric])
    against = meta.evaluation.get("production")
    if current is not None and (against is None or against["version"] != current.version):
        meta = evaluate_candidate(version, settings)
        metric, against = f"{GATE_METRIC}@{meta.evaluation['k']}", meta.evaluation["production"]
    production_score = against["metrics"][metric] if against else None
    passed, reasons = decide(
        meta.metrics[metric],
        meta.evaluation["popularity"][metric],
        production_score,
        metric=metric,
        tolerance=settings.gate_tolerance,
        min_lift=settings.gate_min_lift,
    )
    if against is not None:
        reasons = [f"production {against['version']} ({against['how']})", *reasons]
    return _Verdict(meta, metric, passed, reasons, production_score)


def gate_best(
    versions: Sequence[str], *, dry_run: bool = False, settings: Settings | None = None
) -> list[Decision]:
    """Judge every candidate of one retrain and promote the best of those that pass.

    Each candidate is judged on its own evaluation (see the module doc); of those that
    pass, the one with the highest gate metric replaces production (on a tie, the first
    given). With ``dry_run`` production stays where it is and the decisions say what
    would have happened. One decision per candidate, with its reasons, is appended to the
    registry's log, in the order given; they are returned in that order.
    """
    if not versions:
        raise ValueError("no candidate to gate")
    settings = settings or Settings.from_env()
    registry = ModelRegistry(settings.data_dir)
    current = registry.production()
    verdicts = [_judge(registry, version, current, settings) for version in versions]
    best = best_passing(verdicts, lambda v: v.passed, lambda v: v.score)
    promote = None if best is None or dry_run else best.meta.version
    if promote is not None and (current is None or current.version != promote):
        registry.set_production(promote)
    after = registry.production()
    decisions = []
    for verdict in verdicts:
        reasons = list(verdict.reasons)
        if best is not None and len(verdicts) > 1:
            if verdict is best:
                reasons.append(f"best of {len(verdicts)} candidates by {best.metric}")
            elif verdict.passed:
                reasons.append(f"passed, but {best.meta.version} ranks first ({best.score:.4f})")
        if dry_run and verdict is best:
            reasons.append("dry run: would be promoted; production not moved")
        decision = Decision(
            candidate=verdict.meta.version,
            promoted=verdict is best and not dry_run,
            metric=verdict.metric,
            candidate_score=verdict.score,
            popularity_score=verdict.meta.evaluation["popularity"][verdict.metric],
            production_before=current.version if current else None,
            production_score=verdict.production_score,
            production_after=after.version if after else None,
            tolerance=settings.gate_tolerance,
            min_lift=settings.gate_min_lift,
            reasons=reasons,
            decided_at=datetime.now(UTC).isoformat(),
            passed=verdict.passed,
            chosen=verdict is best,
            dry_run=dry_run,
        )
        registry.log_decision(asdict(decision))
        log.info(
            "gate: %s %s (%s)",
            decision.candidate,
            "PROMOTED" if decision.promoted else "passed" if decision.passed else "refused",
            "; ".join(reasons),
        )
        decisions.append(decision)
    return decisions


def gate(version: str, settings: Settings | None = None) -> Decision:
    """Decide whether ``version`` replaces production, move the pointer if so, log it:
    ``gate_best`` with one candidate."""
    return gate_best([version], settings=settings)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.gate",
        description="Evaluate a trained model against popularity and the production model on "
        "its snapshot, then promote it to production or refuse it. Prints the decision as "
        "JSON; exit status 0 if promoted, 3 if refused. Thresholds: GATE_TOLERANCE, "
        "GATE_MIN_LIFT (training/settings.py).",
    )
    parser.add_argument("version", nargs="?", help="model version (default: the newest)")
    parser.add_argument(
        "--reevaluate", action="store_true", help="evaluate again even if figures are recorded"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    version = args.version or ModelRegistry(settings.data_dir).meta().version
    if args.reevaluate:
        evaluate_candidate(version, settings)
    decision = gate(version, settings)
    print(json.dumps(asdict(decision)))
    return 0 if decision.promoted else 3


if __name__ == "__main__":
    sys.exit(main())
