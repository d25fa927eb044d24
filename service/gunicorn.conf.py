"""Gunicorn config for the lookup service; every tunable comes from ``service.settings``.

gthread workers: a request is one short Redis round trip, so a few threads per process keep
the CPU busy while one waits on the network, without an event-loop dependency.
"""

# ruff: noqa: N999  (gunicorn's conventional config file name, not a module)
from __future__ import annotations

import os

from service.settings import Settings

_settings = Settings.from_env()

bind = [_settings.bind]
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.gunicorn_threads
keepalive = 5  # the caller reuses connections; longer idles only pin threads
timeout = 30  # a worker silent this long is stuck: kill and replace it
graceful_timeout = 10  # in-flight requests take ms; a rollout should not wait 30 s
accesslog = None  # no access log: structured request logs come from the app later
errorlog = "-"
loglevel = "info"
proc_name = "recsys-service"
# gunicorn >= 25.1 opens a control socket at one fixed path per user ($HOME/.gunicorn): a second
# instance on the host (tests, the demo) would take it over, and images run read-only.
control_socket_disable = True
# Heartbeat files on tmpfs: a slow or read-only container disk must not stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The service's own loggers (fallback warnings, version switches) go to stderr in gunicorn's
# format. gunicorn shallow-merges this into its defaults; its own loggers keep the handlers that
# errorlog/accesslog give them.
logconfig_dict = {
    "loggers": {
        "service": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
    },
}
