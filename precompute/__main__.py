"""``python -m precompute``: publish every user's list, in one process or shard by shard;
roll back; show what is live. Every command prints one JSON object on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from precompute.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m precompute",
        description="Precompute 20 movies per user into Redis and manage published versions. "
        "One process: `run`. Sharded (e.g. Airflow mapped tasks): `begin --shards K`, then "
        "`run --shard i/K --version V` for every i (any order, any worker, retries are "
        "harmless), then `finalize --version V`. Configuration comes from the environment "
        "(see precompute/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="score users and publish (all of them, or one shard)")
    run.add_argument("--model", default=None, help="model version (default: production)")
    run.add_argument("--shard", default=None, metavar="i/K", help="only shard i of K")
    run.add_argument("--version", default=None, help="the pending version (with --shard)")
    begin = sub.add_parser("begin", help="open a pending version; prints its name")
    begin.add_argument("--model", default=None, help="model version (default: production)")
    begin.add_argument("--shards", type=int, default=None, help="K (default $PRECOMPUTE_SHARDS)")
    finalize = sub.add_parser("finalize", help="verify every shard of a version and switch")
    finalize.add_argument("--version", required=True)
    rollback = sub.add_parser("rollback", help="switch back to the previously published version")
    rollback.add_argument("--to", default=None, help="an earlier kept version instead (see status)")
    sub.add_parser("status", help="show the active version, the kept ones and their metadata")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()

    from precompute import publish, stages

    try:
        if args.command == "run" and args.shard is None:
            from precompute.job import precompute_and_publish

            if args.version:
                parser.error("--version goes with --shard")
            result = precompute_and_publish(args.model, settings).as_dict()
        elif args.command == "run":
            from dataclasses import asdict

            from precompute.shard import Shard

            if not args.version:
                parser.error("--shard needs --version (from `begin`)")
            if args.model:
                parser.error("a shard scores with the model its version was begun for")
            result = asdict(stages.run_shard(settings, args.version, Shard.parse(args.shard)))
            result.pop("sample")
        elif args.command == "begin":
            from precompute.job import resolve_model_version

            shards = args.shards or settings.shards
            inputs = stages.Inputs.load(settings, resolve_model_version(settings, args.model))
            version = stages.begin(settings, inputs, shards)
            result = {"version": version, "model_version": inputs.meta.version, "shards": shards}
        elif args.command == "finalize":
            from dataclasses import asdict

            result = asdict(stages.finalize(settings, args.version))
        elif args.command == "rollback":
            from precompute.job import rollback_published

            result = {"active": rollback_published(args.to)}
        else:
            client = stages.connect(settings)
            try:
                result = publish.status(client)
            finally:
                client.close()
    except publish.PublishError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
