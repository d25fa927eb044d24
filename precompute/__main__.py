"""``python -m precompute``: publish every user's list, roll back, show what is live."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from precompute.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m precompute",
        description="Precompute 20 movies per user into Redis and manage published versions. "
        "Configuration comes from the environment (see precompute/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="score every user and publish a new version")
    run.add_argument("--model", default=None, help="model version (default: the newest)")
    sub.add_parser("rollback", help="switch back to the previously published version")
    sub.add_parser("status", help="show the active version and its metadata")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.command == "run":
        from precompute.job import precompute_and_publish

        print(json.dumps(precompute_and_publish(args.model, settings).as_dict()))
        return 0

    import redis

    from precompute import publish
    from service import rediskeys

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    if args.command == "rollback":
        try:
            print(json.dumps({"active": publish.rollback(client)}))
        except publish.PublishError as exc:
            print(f"rollback refused: {exc}", file=sys.stderr)
            return 1
    else:
        version = publish.active(client)
        meta = client.hgetall(rediskeys.meta(version)) if version else {}
        print(json.dumps({"active": version, "versions": publish.versions(client), "meta": meta}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
