"""``python -m ingest``: consume the stream into the journal, cut, inspect and prune snapshots."""

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
    sub.add_parser("list", help="list snapshots, oldest first, with their drift verdict")
    show = sub.add_parser("show", help="print a snapshot's manifest")
    show.add_argument("snapshot_id", nargs="?", help="default: the latest")
    report = sub.add_parser("drift", help="print a snapshot's drift report against its parent")
    report.add_argument("snapshot_id", nargs="?", help="default: the latest")
    prune = sub.add_parser("prune", help="delete old snapshots")
    prune.add_argument("--keep", type=int, default=None, help="default: SNAPSHOT_KEEP")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # per-connection chatter
    settings = Settings.from_env()
    from ingest.journal import Journal
    from ingest.snapshot import EmptyJournalError, open_store

    store = open_store(settings.data_dir)

    def cut() -> int:
        journal = Journal(settings.data_dir, settings.topic)
        try:
            manifest = store.cut(journal, bounds=settings.drift, scale_high=settings.scale.high)
        except EmptyJournalError as exc:
            print(f"no snapshot: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(asdict(manifest)))
        return 0

    if args.command == "consume":
        from ingest.consumer import Consumer

        stats = Consumer(settings).run(idle_seconds=args.idle)
        print(json.dumps(stats.as_dict()))
        if args.snapshot:
            return cut()
    elif args.command == "snapshot":
        return cut()
    elif args.command == "list":
        for snapshot_id in store.list():
            suspect = store.manifest(snapshot_id).suspect
            print(f"{snapshot_id}\t{'SUSPECT' if suspect else 'ok'}")
    elif args.command == "show":
        print(json.dumps(asdict(store.manifest(args.snapshot_id)), indent=2))
    elif args.command == "drift":
        print(store.drift_report(args.snapshot_id), end="")
    elif args.command == "prune":
        for snapshot_id in store.prune(args.keep or settings.snapshot_keep):
            print(f"deleted {snapshot_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
