"""``python -m service``: run the lookup service under gunicorn with ``gunicorn.conf.py``.

Extra arguments go to gunicorn (``python -m service --check-config``); ``--help`` prints the
environment variables instead. The process execs into gunicorn, so signals (SIGTERM for a
graceful stop) reach the gunicorn master directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service import settings
from service.fallback import FallbackError, read_fallback

CONFIG = Path(__file__).resolve().with_name("gunicorn.conf.py")
APP = "service.app:create_app()"


def gunicorn_argv(extra: list[str]) -> list[str]:
    """The exact command line ``python -m service`` execs."""
    return [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), *extra, APP]


def main(argv: list[str]) -> None:
    if "-h" in argv or "--help" in argv:
        print(f"usage: python -m service [gunicorn options]\n\n{settings.__doc__}")
        sys.exit(0)
    try:
        # Fail here, with the variable's name, not in each worker: bad settings, or a
        # fallback list that could not be served during an outage.
        read_fallback(settings.Settings.from_env().fallback_path)
    except (settings.SettingsError, FallbackError) as exc:
        sys.exit(f"python -m service: {exc}")
    command = gunicorn_argv(argv)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
