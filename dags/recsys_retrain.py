"""Retrain and republish: pick a snapshot -> train -> precompute every user -> publish.

Only wiring lives here; every step is a library function (``ingest``, ``training``,
``precompute``) imported inside its task, so parsing this file imports nothing heavy.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(minutes=2)}


@dag(
    dag_id="recsys_retrain",
    schedule=os.environ.get("RECSYS_RETRAIN_SCHEDULE", "@daily"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recsys"],
    params={
        "snapshot_id": Param("", type="string", description="snapshot to train on; empty: latest"),
        "algorithm": Param("svd", enum=["svd", "popularity"], description="model to train"),
    },
)
def recsys_retrain() -> None:
    @task(execution_timeout=timedelta(minutes=30))
    def pick_snapshot(params: dict | None = None) -> str:
        from ingest.settings import Settings
        from ingest.snapshot import pick_snapshot

        settings = Settings.from_env()
        return pick_snapshot(
            params["snapshot_id"] or None, root=settings.data_dir, topic=settings.topic
        )

    @task(execution_timeout=timedelta(hours=2))
    def train(snapshot_id: str, params: dict | None = None) -> str:
        from training.train import train

        return train(params["algorithm"], snapshot_id).version

    @task(execution_timeout=timedelta(hours=2))
    def precompute_and_publish(model_version: str) -> dict:
        from precompute.job import precompute_and_publish

        return precompute_and_publish(model_version).as_dict()

    precompute_and_publish(train(pick_snapshot()))


recsys_retrain()
