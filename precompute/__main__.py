"""``python -m precompute``: publish every user's list, in one process or shard by shard;
roll back; show what is live. Every command prints one JSON object on stdout. The commands
are ``precompute.steps``'s functions."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from precompute.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m precompute",
        description="Precompute 20 movies per user into Redis and manage published versions. "
        "One process: `publish`. Sharded (e.g. Airflow mapped tasks): `begin --shards K`, then "
        "`write-shard --shard i/K --version V` for every i (any order, any worker, retries are "
        "harmless), then `finalize --version V`. Configuration comes from the environment "
        "(see precompute/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    whole = sub.add_parser("publish", help="begin, write every user as one shard, finalize")
    whole.add_argument("--model", default=None, help="model version (default: production)")
    begin = sub.add_parser("begin", help="open a pending version; prints its name")
    begin.add_argument("--model", default=None, help="model version (default: production)")
    begin.add_argument("--shards", type=int, default=None, help="K (default $PRECOMPUTE_SHARDS)")
    shard = sub.add_parser(
        "write-shard", help="score shard i of K with the version's model and write it"
    )
    shard.add_argument("--shard", required=True, metavar="i/K", help="shard i of K")
    shard.add_argument("--version", required=True, help="the pending version (from `begin`)")
    finalize = sub.add_parser("finalize", help="verify every shard of a version and switch")
    finalize.add_argument("--version", required=True)
    rollback = sub.add_parser("rollback", help="switch back to the previously published version")
    rollback.add_argument("--to", default=None, help="an earlier kept version instead (see status)")
    sub.add_parser("status", help="show the active version, the kept ones and their metadata")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()

    from precompute import steps
    from precompute.versions import PublishError

    try:
        if args.command == "publish":
            result = steps.publish(args.model, settings).as_dict()
        elif args.command == "begin":
            result = steps.begin(args.model, args.shards, settings).as_dict()
        elif args.command == "write-shard":
            result = asdict(steps.write_shard(args.version, args.shard, settings))
            result.pop("sample")
        elif args.command == "finalize":
            result = asdict(steps.finalize(args.version, settings))
        elif args.command == "rollback":
            result = {"active": steps.rollback(args.to, settings)}
        else:
            result = steps.status(settings)
    except PublishError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
