"""``python -m simulator.leaderboard USERS,MOVIES,DAYS[,SEED]``: the leaderboard
(``training.evaluate``, same options) on a snapshot of a simulated world, cut in a temporary
directory through the real journal and snapshot code. For plumbing and the docs' simulator
figures; quality claims come from ``make leaderboard-ml100k``."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from simulator.snapshots import simulated_snapshot
from training import evaluate
from training.history import History
from training.settings import Settings


def simulated_history(spec: str) -> History:
    """The history of world ``USERS,MOVIES,DAYS[,SEED]``."""
    users, movies, days, *rest = (int(part) for part in spec.split(","))
    with tempfile.TemporaryDirectory(prefix="evaluate-sim-") as root:
        snapshot = simulated_snapshot(
            Path(root), users=users, movies=movies, days=days, seed=rest[0] if rest else 0
        )
        history = History.from_snapshot(snapshot)
    return History(history.ratings, history.watches, f"simulated world {spec}")


def main(argv: list[str] | None = None) -> int:
    parser = evaluate.parser(sources=False)
    parser.prog = "python -m simulator.leaderboard"
    parser.description = "The offline leaderboard on a simulated world (plumbing, not quality)."
    parser.add_argument("world", metavar="USERS,MOVIES,DAYS[,SEED]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return evaluate.run(simulated_history(args.world), args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
