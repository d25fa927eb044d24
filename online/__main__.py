"""``python -m online``: run the online evaluation job once, or show its latest metrics."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from online.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m online",
        description="Online metrics (conversion, availability, latency, personalisation) per "
        "model version and A/B variant, from the service's request log and the event stream. "
        "Configuration comes from the environment (see online/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="read what is new, update the metrics, write the report")
    sub.add_parser("show", help="print the latest metrics.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    if args.command == "run":
        from online.evaluation import run

        print(json.dumps(run(settings)))
        return 0
    from online.online_report import METRICS_JSON

    path = settings.out_dir / METRICS_JSON
    if not path.exists():
        print(f"no metrics yet: {path} (run `python -m online run`)", file=sys.stderr)
        return 1
    print(path.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
