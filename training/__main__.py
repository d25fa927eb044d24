"""``python -m training``: train a model on a snapshot, list models, show the gate's log.

The leaderboard is ``python -m training.evaluate``; the gate is ``python -m training.gate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

from training.settings import Settings


def main(argv: list[str] | None = None) -> int:
    from training.train import ALGORITHMS, DEFAULT_ALGORITHM

    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train recommendation models on snapshots, list them, show the gate's "
        "decisions. Configuration comes from the environment (see training/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train", help="train one algorithm on a snapshot")
    fit.add_argument("--algorithm", choices=list(ALGORITHMS), default=DEFAULT_ALGORITHM)
    fit.add_argument("--snapshot", default=None, help="snapshot ID (default: the latest)")
    fit.add_argument(
        "--params",
        metavar="FILE",
        type=Path,
        help="parameters chosen by `python -m training.tune` (default: $TUNED_PARAMS); a "
        "model the file does not name uses the settings",
    )
    sub.add_parser(
        "list",
        help="list trained models, oldest first, one JSON object a line "
        '("production": true marks the one served)',
    )
    sub.add_parser("production", help="show the production model's metadata")
    sub.add_parser("decisions", help="the gate's decision log, oldest first")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.command == "train":
        from training.train import train

        if args.params is not None:
            settings = replace(settings, tuned_params=args.params)
        print(json.dumps(asdict(train(args.algorithm, args.snapshot, settings))))
        return 0

    from training.registry import ModelRegistry

    registry = ModelRegistry(settings.data_dir)
    if args.command == "list":
        production = registry.production()
        for meta in registry.list():
            served = production is not None and meta.version == production.version
            print(json.dumps({**asdict(meta), "production": served}))
    elif args.command == "production":
        production = registry.production()
        if production is None:
            print("no production model: the gate has promoted none yet", file=sys.stderr)
            return 1
        print(json.dumps(asdict(production)))
    else:
        for decision in registry.decisions():
            print(json.dumps(decision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
