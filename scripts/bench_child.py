"""Run one integration DAG in this fresh process and print what it cost (for bench.py).

Usage: python scripts/bench_child.py DAG_ID DAGS_FOLDER   (env: AIRFLOW_HOME,
KANDJI_OOMNITZA_INTEGRATIONS_DIR, AIRFLOW_CONN_KANDJI_DEFAULT, AIRFLOW_CONN_OOMNITZA_DEFAULT, BENCH_MODE).

BENCH_MODE=executor (the default) runs the DAG as production does: LocalExecutor, every task in its own
process, the task processes talking to a real `airflow api-server`; the memory reported is the peak
resident memory of the largest task process (each task's own peak is sampled too). BENCH_MODE=in-process
runs every task inside this process with plain dag.test(); its peak then adds up all the tasks' memory.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

MODE = os.environ.get("BENCH_MODE", "executor")


def rss_mb(pid: int | str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(root: int, excluded: set[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in excluded:
                found.append(child)
                stack.append(child)
    return found


class RssSampler(threading.Thread):
    """Every 100 ms: the resident memory of the process doing the work (this one in-process; the
    largest task process with the executor), so the peak can be split by task."""

    def __init__(self, excluded: set[int]) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []  # (unix time, MB)
        self.excluded = excluded
        self.running = True

    def run(self) -> None:
        me = os.getpid()
        while self.running:
            if MODE == "in-process":
                largest = rss_mb(me)
            else:
                largest = max((rss_mb(p) for p in descendants(me, self.excluded)), default=0.0)
            self.samples.append((time.time(), largest))
            time.sleep(0.1)

    def peak_between(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)


def use_executor() -> int:
    """Configure this process for LocalExecutor; returns the port for the API server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The executor's task processes reach the API server with tokens signed by this same secret.
    os.environ.update(
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=f"bench-{os.getpid()}-{port}",
    )
    return port


def start_api_server(port: int) -> subprocess.Popen:
    log = open(Path(os.environ["AIRFLOW_HOME"]) / "api-server.log", "w")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        # Loopback only: the bench's API server signs task tokens with a throwaway secret, and nothing else
        # needs to reach it.
        [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=1)
            return server
        except requests.RequestException:
            time.sleep(0.5)
    raise SystemExit("the API server did not start; see api-server.log in the bench AIRFLOW_HOME")


def main() -> None:
    dag_id = sys.argv[1]
    port = use_executor() if MODE == "executor" else None
    from airflow.utils.db import initdb

    initdb()
    server = start_api_server(port) if port else None
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=sys.argv[2]).dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    sampler = RssSampler(excluded={server.pid} if server else set())
    sampler.start()
    started = time.perf_counter()
    run = dag.test(use_executor=MODE == "executor")
    wall = time.perf_counter() - started
    sampler.running = False
    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
            .all()
        )
        task_seconds = {ti.task_id: round(ti.duration or 0, 1) for ti in tis}
        task_peaks = {
            ti.task_id: round(sampler.peak_between(ti.start_date.timestamp(), ti.end_date.timestamp()))
            for ti in tis
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
    if MODE == "executor":
        # The largest task process (every task process has ended and been reaped by now).
        peak_mb = max(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, max(task_peaks.values(), default=0)
        )
        server.terminate()
        server.wait(timeout=30)
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        "BENCH "
        + json.dumps(
            {
                "state": str(run.state),
                "mode": MODE,
                "wall_seconds": wall,
                "peak_mb": peak_mb,
                "task_peak_mb": task_peaks,
                "task_seconds": task_seconds,
                "summary": summary,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
