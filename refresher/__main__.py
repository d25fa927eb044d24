"""``python -m refresher``: keep users' lists fresh between retrains (``refresher.refresher``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from refresher.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m refresher",
        description="Read the event stream and rewrite the lists of users who just watched or "
        "rated, in every version the service reads, with that version's model (folding their "
        "history in). Configuration comes from the environment (see refresher/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="refresh until SIGTERM (or --idle)")
    run.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long with every version caught up and nothing new",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    from refresher.refresher import Refresher

    stats = Refresher(Settings.from_env()).run(idle_seconds=args.idle)
    print(json.dumps(stats.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
