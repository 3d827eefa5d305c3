"""Run one integration DAG with dag.test() in this fresh process and print what it cost (for bench.py).

Usage: python scripts/bench_child.py DAG_ID   (env: AIRFLOW_HOME, KANDJI_OOMNITZA_INTEGRATIONS_DIR,
AIRFLOW_CONN_KANDJI_DEFAULT, AIRFLOW_CONN_OOMNITZA_DEFAULT). The process's peak RSS is the peak memory
of the work, since dag.test() runs every task in this process.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    dag_id = sys.argv[1]
    from airflow.utils.db import initdb

    initdb()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=sys.argv[2]).dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    started = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - started
    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.task_id == "report")
            .filter(XComModel.key == "return_value")
            .first()
        )
        summary = XComModel.deserialize_value(row) if row else None
        if isinstance(summary, str):
            summary = json.loads(summary)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        "BENCH "
        + json.dumps(
            {"state": str(run.state), "wall_seconds": wall, "peak_mb": peak_mb, "summary": summary},
            default=str,
        )
    )


if __name__ == "__main__":
    main()
