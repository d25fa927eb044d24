"""``python -m ingest``: consume the stream into the journal, cut and inspect snapshots."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from ingest.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Kafka event stream -> validated journal -> immutable snapshots. "
        "Configuration comes from the environment (see ingest/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    consume = sub.add_parser("consume", help="consume the topic into the journal")
    consume.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long without new events (default: run until SIGTERM)",
    )
    consume.add_argument(
        "--snapshot", action="store_true", help="cut a snapshot when the consumer stops"
    )
    sub.add_parser("snapshot", help="cut a snapshot of everything journaled so far")
    sub.add_parser("list", help="list snapshot IDs, oldest first")
    show = sub.add_parser("show", help="print a snapshot's manifest")
    show.add_argument("snapshot_id", nargs="?", help="default: the latest")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # per-connection chatter
    settings = Settings.from_env()
    from ingest.journal import Journal
    from ingest.snapshot import SnapshotStore

    store = SnapshotStore(settings.data_dir)
    if args.command == "consume":
        from ingest.consumer import Consumer

        stats = Consumer(settings).run(idle_seconds=args.idle)
        print(json.dumps(stats.as_dict()))
        if args.snapshot:
            manifest = store.cut(Journal(settings.data_dir, settings.topic))
            print(json.dumps(asdict(manifest)))
    elif args.command == "snapshot":
        manifest = store.cut(Journal(settings.data_dir, settings.topic))
        print(json.dumps(asdict(manifest)))
    elif args.command == "list":
        print("\n".join(store.list()))
    elif args.command == "show":
        print(json.dumps(asdict(store.manifest(args.snapshot_id)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
