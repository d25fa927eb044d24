"""The job's state between runs, committed atomically: all of it or none of it.

``<out>/state.json`` holds the reading positions (journal offsets, request-log file offsets,
Kafka offsets), the watermark and the counters; it names a generation directory
``<out>/state/<n>/`` holding the tables:

- ``totals``, ``histogram``, ``per_version``, ``served``: the sums ``online.totals`` adds up;
- ``starts``: each (user, movie)'s first watch, over the whole stream (a later watch is a
  continuation, not a start, however old the first one is);
- ``pending``: exposure candidates whose window is still open, plus the already judged ones
  a late repeat could still be compared with (``resolved``);
- ``watches``: the watch events that open windows can still need.

A run writes a new generation, then replaces ``state.json`` (the commit), then deletes older
generations; a run that dies before the commit leaves the previous state whole, so the next
run reads the same input again and nothing is counted twice.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from contracts.response import SEPARATOR, parse_body
from online import frames, totals
from online.conversion import VERSION_OUTCOME_DTYPES

STATE_FILE = "state.json"
TABLES_DIR = "state"
_STARTS_DTYPES = {"user": "int64", "movie": "str", "first_time": "datetime64[ns]"}
_SERVED_DTYPES = {
    "version": "str",
    "variant": "str",
    "user": "int64",
    "list_hash": "int64",
    "last_time": "datetime64[ns]",
}


def _empty(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def empty_pending() -> pd.DataFrame:
    return frames.empty_recommendations().assign(resolved=pd.Series(dtype=bool))


@dataclass
class State:
    journal: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> partition -> next
    files: dict[str, dict] = field(default_factory=dict)  # path -> {inode, offset}
    kafka: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> partition -> next
    watermark: pd.Timestamp | None = None
    rejected: Counter = field(default_factory=Counter)
    runs: int = 0
    totals: pd.DataFrame = field(default_factory=totals.empty_totals)
    histogram: pd.DataFrame = field(
        default_factory=lambda: _empty({"version": "str", "variant": "str", "bin": "int64"}).assign(
            count=pd.Series(dtype="int64")
        )
    )
    per_version: pd.DataFrame = field(default_factory=lambda: _empty(VERSION_OUTCOME_DTYPES))
    served: pd.DataFrame = field(default_factory=lambda: _empty(_SERVED_DTYPES))
    starts: pd.DataFrame = field(default_factory=lambda: _empty(_STARTS_DTYPES))
    pending: pd.DataFrame = field(default_factory=empty_pending)
    watches: pd.DataFrame = field(default_factory=frames.empty_watches)

    @classmethod
    def load(cls, out_dir: Path) -> State:
        path = out_dir / STATE_FILE
        if not path.exists():
            return cls()
        meta = json.loads(path.read_text())
        tables = out_dir / TABLES_DIR / meta["generation"]

        def read(name: str) -> pd.DataFrame:
            return pd.read_parquet(tables / f"{name}.parquet")

        pending = read("pending")
        pending["movies"] = [tuple(parse_body(text)) for text in pending["movies"]]
        return cls(
            journal=meta["journal"],
            files=meta["files"],
            kafka=meta["kafka"],
            watermark=None if meta["watermark"] is None else pd.Timestamp(meta["watermark"]),
            rejected=Counter(meta["rejected"]),
            runs=meta["runs"],
            totals=read("totals").set_index(totals.GROUP),
            histogram=read("histogram"),
            per_version=read("per_version"),
            served=read("served"),
            starts=read("starts"),
            pending=pending,
            watches=read("watches"),
        )

    def save(self, out_dir: Path) -> None:
        generation = f"{self.runs:012d}"
        root = out_dir / TABLES_DIR
        tmp = root / f".tmp-{generation}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        pending = self.pending.assign(movies=[SEPARATOR.join(m) for m in self.pending["movies"]])
        tables = {
            "totals": self.totals.reset_index(),
            "histogram": self.histogram,
            "per_version": self.per_version,
            "served": self.served,
            "starts": self.starts,
            "pending": pending,
            "watches": self.watches,
        }
        for name, table in tables.items():
            table.to_parquet(tmp / f"{name}.parquet", index=False)
        final = root / generation
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        meta = {
            "generation": generation,
            "journal": self.journal,
            "files": self.files,
            "kafka": self.kafka,
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "rejected": dict(self.rejected),
            "runs": self.runs,
        }
        write_atomic(out_dir / STATE_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        for old in root.iterdir():
            if old.name != generation:
                shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
