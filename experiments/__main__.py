"""``python -m experiments``: start, change, stop and inspect the A/B experiment the service
routes by, analyse it, step a bandit, write its report. Every command prints one JSON
object on stdout; a refusal prints why on stderr and exits 1, having changed nothing."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import redis

from contracts import rediskeys
from experiments import bandit, review, store
from experiments.definition import Experiment
from experiments.settings import Settings, SettingsError

SERVED_NOW = "active"  # as a version: the one rec:{ctl}:active names when the experiment starts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="A/B experiments on published model versions, stored in Redis where the "
        "service reads them (no redeploy). Configuration comes from the environment (see "
        "experiments/settings.py); outcomes are a Parquet or CSV file with one row per "
        "(user, variant): user, variant, first_exposure, converted.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start an experiment (one runs at a time)")
    start.add_argument("name")
    start.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=VERSION",
        help=f"a variant and its published version ('{SERVED_NOW}': the one served now); repeat",
    )
    start.add_argument(
        "--weight", action="append", metavar="NAME=INT", help="its share (default: equal)"
    )
    start.add_argument("--mode", choices=("fixed", "bandit"), default="fixed")
    start.add_argument("--floor", type=float, default=None, help="bandit floor ($BANDIT_FLOOR)")
    start.add_argument("--control", default="control", help="the variant compared against")
    split = sub.add_parser("split", help="change the running experiment's split")
    split.add_argument("--weight", action="append", required=True, metavar="NAME=INT")
    sub.add_parser("stop", help="stop it: everyone back to control on rec:{ctl}:active")
    sub.add_parser("status", help="what runs, the live split and versions, past experiments")
    analyze = sub.add_parser("analyze", help="the statistics and the verdict")
    analyze.add_argument("outcomes", type=Path)
    analyze.add_argument(
        "--experiment",
        default=None,
        help="take the variants, control and time window of this stored experiment",
    )
    analyze.add_argument("--control", default="control", help="without --experiment")
    bandit = sub.add_parser("bandit-step", help="one Thompson-sampling update of the split")
    bandit.add_argument("outcomes", type=Path)
    report = sub.add_parser("report", help="markdown and PNG plots of a stored experiment")
    report.add_argument("outcomes", type=Path)
    report.add_argument("--out", type=Path, default=None, help="default: $RECSYS_DATA_DIR/...")
    report.add_argument("--experiment", default=None, help="default: the running one")
    for command in (analyze, report):
        command.add_argument("--alpha", type=float, default=None, help="$EXPERIMENT_ALPHA")
        command.add_argument("--mde", type=float, default=None, help="$EXPERIMENT_MDE")
        command.add_argument("--looks", type=int, default=None, help="$EXPERIMENT_LOOKS")
    return parser


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{what} {item!r}: want NAME=VALUE")
        if name in pairs:
            raise ValueError(f"{what} {name} given twice")
        pairs[name] = value
    return pairs


def _weights(items: list[str]) -> dict[str, int]:
    weights = {}
    for name, value in _pairs(items, "--weight").items():
        if not value.isascii() or not value.isdigit():
            raise ValueError(f"--weight {name}={value}: want an integer >= 0")
        weights[name] = int(value)
    return weights


def _draft(args: argparse.Namespace, settings: Settings, client: store.Client) -> Experiment:
    """The experiment ``start`` was asked for, with ``active`` versions resolved."""
    variants = _pairs(args.variant, "--variant")
    if SERVED_NOW in variants.values():
        active = client.get(rediskeys.ACTIVE)
        if active is None:
            raise ValueError(f"--variant NAME={SERVED_NOW}: {rediskeys.ACTIVE} is unset")
        assert isinstance(active, str), "main() makes the client with decode_responses=True"
        variants = {v: active if ver == SERVED_NOW else ver for v, ver in variants.items()}
    weights = _weights(args.weight) if args.weight else dict.fromkeys(variants, 1)
    floor = settings.bandit_floor if args.floor is None else args.floor
    return Experiment(args.name, variants, weights, args.mode, floor, args.control)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        parser.error(str(exc))
    overrides = {
        key: getattr(args, key)
        for key in ("alpha", "mde", "looks")
        if getattr(args, key, None) is not None
    }
    settings = replace(settings, **overrides)

    client = store.connect(settings.redis_url, settings.redis_topology)
    try:
        if args.command == "start":
            result = store.start(client, _draft(args, settings, client)).to_dict()
        elif args.command == "split":
            result = store.change_split(client, _weights(args.weight)).to_dict()
        elif args.command == "stop":
            stopped = store.stop(client)
            result = {"stopped": None if stopped is None else stopped.to_dict()}
        elif args.command == "status":
            result = store.status(client)
        elif args.command == "analyze" and args.experiment is None:
            outcomes = review.read_outcomes(args.outcomes)
            result = review.analyze_outcomes(outcomes, settings, args.control).as_dict()
        elif args.command == "analyze":
            experiment = review.experiment_named(client, args.experiment)
            outcomes = review.read_outcomes(args.outcomes)
            result = review.analyze_experiment(experiment, outcomes, settings).as_dict()
        elif args.command == "bandit-step":
            outcomes = review.read_outcomes(args.outcomes)
            moved = bandit.step(client, outcomes, draws=settings.bandit_draws, seed=settings.seed)
            result = {"name": moved.name, "weights": dict(moved.weights)}
        else:
            experiment = review.experiment_named(client, args.experiment)
            outcomes = review.read_outcomes(args.outcomes)
            analysis, files = review.report_experiment(
                experiment, outcomes, settings, args.out or settings.report_dir
            )
            result = {"verdict": analysis.verdict.label, "files": [str(f) for f in files]}
    except (store.RefusedError, ValueError, OSError, redis.RedisError) as exc:
        # ValueError: a bad definition or outcomes file; OSError: a missing file
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
