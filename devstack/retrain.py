"""Run a DAG (``recsys_retrain`` unless ``--dag`` says otherwise) in-process with
``dag.test()``, as the demo and tests do.

Airflow reads its configuration when first imported, so this runs as its own process
(``python -m devstack.retrain``) with a throwaway AIRFLOW_HOME whose metadata DB is reset
each time; the DAG is loaded from ``dags/`` as the scheduler's DAG processor loads it (a
bundle whose folder is importable, so the DAG files share ``recsys_defaults``). Prints
``{"dag_id", "run_id", "state"}`` last; exit status 0 only if the run succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from contracts import locations

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DAG = "recsys_retrain"


def configure(airflow_home: Path) -> None:
    """Point Airflow at a private home and the project's DAGs, before it is imported."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ.setdefault("PYTHONPATH", str(REPO))


def load_dag(dag_id: str):
    """``dag_id`` from dags/, after checking that every file there imports cleanly."""
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = BundleDagBag(folder, bundle_path=folder, bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    if dag_id not in bag.dag_ids:
        raise SystemExit(f"no DAG {dag_id!r} in {folder}; there are {sorted(bag.dag_ids)}")
    return bag.get_dag(dag_id)


def describe(dag_id: str) -> dict:
    """The DAG's shape as the scheduler sees it: tasks and their downstream tasks."""
    dag = load_dag(dag_id)
    return {
        "dag_id": dag.dag_id,
        "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "params": sorted(dag.params.keys()),
    }


def run(dag_id: str, conf: dict) -> dict:
    """Load the DAG from dags/ and run it; returns its ID, the run's ID and its state."""
    dag_run = load_dag(dag_id).test(run_conf=conf)
    return {"dag_id": dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.retrain", description=__doc__)
    parser.add_argument(
        "--dag", default=DEFAULT_DAG, help=f"the DAG to run (default {DEFAULT_DAG})"
    )
    parser.add_argument("--conf", default="{}", help="DAG params as JSON")
    parser.add_argument(
        "--describe", action="store_true", help="print the DAG's tasks as JSON, run nothing"
    )
    parser.add_argument(
        "--airflow-home",
        type=Path,
        default=locations.data_dir() / "airflow",
    )
    args = parser.parse_args(argv)
    configure(args.airflow_home.resolve())
    from airflow.utils import db

    db.resetdb()  # a fresh metadata DB each time: runs never see each other's state
    if args.describe:
        print(json.dumps(describe(args.dag)))
        return 0
    result = run(args.dag, json.loads(args.conf))
    print(json.dumps(result))
    return 0 if result["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
