"""``python -m training``: train a model on a snapshot, list trained models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from training.settings import Settings


def main(argv: list[str] | None = None) -> int:
    from training.train import ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train recommendation models on snapshots. "
        "Configuration comes from the environment (see training/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train", help="train one algorithm on a snapshot")
    fit.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="svd")
    fit.add_argument("--snapshot", default=None, help="snapshot ID (default: the latest)")
    sub.add_parser("list", help="list trained models, oldest first")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.command == "train":
        from training.train import train

        print(json.dumps(asdict(train(args.algorithm, args.snapshot, settings))))
    else:
        from training.registry import ModelRegistry

        for meta in ModelRegistry(settings.data_dir).list():
            print(json.dumps(asdict(meta)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
