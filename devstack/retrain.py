"""Run the ``recsys_retrain`` DAG in-process with ``dag.test()``, as the demo and tests do.

Airflow reads its configuration when first imported, so this runs as its own process
(``python -m devstack.retrain``) with a throwaway AIRFLOW_HOME whose metadata DB is reset
each time; the DAG itself is the very file the scheduler would load from ``dags/``.
Exit status 0 only if the run succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "recsys_retrain"


def configure(airflow_home: Path) -> None:
    """Point Airflow at a private home and the project's DAGs, before it is imported."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ.setdefault("PYTHONPATH", str(REPO))


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag(DAG_ID)


def describe() -> dict:
    """The DAG's shape as the scheduler sees it: tasks and their downstream tasks."""
    dag = load_dag()
    return {
        "dag_id": dag.dag_id,
        "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "params": sorted(dag.params.keys()),
    }


def run(conf: dict) -> str:
    """Load the DAG from dags/ and run it; returns the run's state."""
    return str(load_dag().test(run_conf=conf).state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.retrain", description=__doc__)
    parser.add_argument("--conf", default="{}", help="DAG params as JSON")
    parser.add_argument(
        "--describe", action="store_true", help="print the DAG's tasks as JSON, run nothing"
    )
    parser.add_argument(
        "--airflow-home",
        type=Path,
        default=Path(os.environ.get("RECSYS_DATA_DIR", "var")) / "airflow",
    )
    args = parser.parse_args(argv)
    configure(args.airflow_home.resolve())
    from airflow.utils import db

    db.resetdb()  # a fresh metadata DB each time: runs never see each other's state
    if args.describe:
        print(json.dumps(describe()))
        return 0
    state = run(json.loads(args.conf))
    print(json.dumps({"dag_id": DAG_ID, "state": state}))
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
