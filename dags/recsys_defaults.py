"""What the recsys DAG files share, read from the environment in one place (defines no DAG).

| variable                     | default | meaning                                         |
|------------------------------|---------|-------------------------------------------------|
| RECSYS_RETRAIN_SCHEDULE      | @daily  | when ``recsys_retrain`` runs (cron or preset)   |
| RECSYS_MAINTENANCE_SCHEDULE  | @daily  | when ``recsys_maintenance`` runs                |
| ONLINE_SCHEDULE              | @hourly | when ``recsys_online`` runs (read there)        |
| RECSYS_TASK_RETRIES          | 2       | retries of every task (>= 0)                    |
| RECSYS_RETRY_DELAY_SECONDS   | 120     | wait before each retry (whole seconds, >= 0)    |

An empty value counts as unset; a bad value raises ``SettingsError`` naming the variable, so
the DAG file fails to parse with that message. Only ``contracts.env`` (standard library) is
imported here: parsing a DAG file stays cheap.

Every task is idempotent (a retry redoes or reuses its work) and has its own
``execution_timeout`` in its DAG.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts.env import environment, non_negative_int, read_var

_env = environment()
RETRAIN_SCHEDULE = read_var(_env, "RECSYS_RETRAIN_SCHEDULE", str, "@daily")
MAINTENANCE_SCHEDULE = read_var(_env, "RECSYS_MAINTENANCE_SCHEDULE", str, "@daily")
START_DATE = datetime(2025, 1, 1)
DEFAULT_ARGS = {
    "retries": read_var(_env, "RECSYS_TASK_RETRIES", non_negative_int, 2),
    "retry_delay": timedelta(
        seconds=read_var(_env, "RECSYS_RETRY_DELAY_SECONDS", non_negative_int, 120)
    ),
}
# What every recsys DAG passes to ``@dag`` besides its id and schedule: no backfill, one run
# at a time, the shared retries.
DAG_ARGS: dict[str, Any] = {
    "start_date": START_DATE,
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": ["recsys"],
}
