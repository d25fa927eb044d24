"""What the recsys DAG files share, read from the environment in one place (defines no DAG).

| variable                     | default | meaning                                         |
|------------------------------|---------|-------------------------------------------------|
| RECSYS_RETRAIN_SCHEDULE      | @daily  | when ``recsys_retrain`` runs (cron or preset)   |
| RECSYS_MAINTENANCE_SCHEDULE  | @daily  | when ``recsys_maintenance`` runs                |
| RECSYS_TASK_RETRIES          | 2       | retries of every task                           |
| RECSYS_RETRY_DELAY_SECONDS   | 120     | wait before each retry                          |

Every task is idempotent (a retry redoes or reuses its work) and has its own
``execution_timeout`` in its DAG.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

RETRAIN_SCHEDULE = os.environ.get("RECSYS_RETRAIN_SCHEDULE", "@daily")
MAINTENANCE_SCHEDULE = os.environ.get("RECSYS_MAINTENANCE_SCHEDULE", "@daily")
START_DATE = datetime(2025, 1, 1)
DEFAULT_ARGS = {
    "retries": int(os.environ.get("RECSYS_TASK_RETRIES", "2")),
    "retry_delay": timedelta(seconds=int(os.environ.get("RECSYS_RETRY_DELAY_SECONDS", "120"))),
}
