"""Run one integration DAG with dag.test() in this fresh process and print what it cost (for bench.py).

Usage: python scripts/bench_child.py DAG_ID   (env: AIRFLOW_HOME, KANDJI_OOMNITZA_INTEGRATIONS_DIR,
AIRFLOW_CONN_KANDJI_DEFAULT, AIRFLOW_CONN_OOMNITZA_DEFAULT). The process's peak RSS is the peak memory
of the work, since dag.test() runs every task in this process.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path


class RssSampler(threading.Thread):
    """Samples this process's resident memory every 50 ms, so the peak can be split by task."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []  # (unix time, MB)
        self.running = True

    def run(self) -> None:
        status = Path("/proc/self/status")
        while self.running:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.time(), int(line.split()[1]) / 1024))
            time.sleep(0.05)

    def peak_between(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)


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
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - started
    sampler.running = False
    from airflow.models.taskinstance import TaskInstance

    with create_session() as session:
        task_peaks = {
            ti.task_id: round(sampler.peak_between(ti.start_date.timestamp(), ti.end_date.timestamp()))
            for ti in session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
            )
            if ti.start_date and ti.end_date
        }
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
            {
                "state": str(run.state),
                "wall_seconds": wall,
                "peak_mb": peak_mb,
                "task_peak_mb": task_peaks,
                "summary": summary,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
