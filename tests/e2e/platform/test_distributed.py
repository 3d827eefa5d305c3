"""Distributed proof: Airflow on PostgreSQL with the CeleryExecutor and a Redis broker, every component
in its own process (API server, scheduler, dag processor, triggerer, Celery worker), DAGs triggered
through the REST API.

The worker has its own AIRFLOW_HOME and working directory, so nothing can pass between tasks through
local files, and each task runs in its own process, so nothing passes through memory: XComs travel
through the metadata database. PostgreSQL and Redis come from `make test` (``scripts/services.py``: the
machine's own, started if stopped, or the Python-packaged servers); without them the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT, free_port, service
from helpers.waiting import wait_until

from scripts.services import create_database, database_url, drop_database

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def distributed(tmp_path_factory, kandji_process, oomnitza_process, postgres_server):
    work = tmp_path_factory.mktemp("distributed")
    redis = service("Redis") + "/7"
    database = f"airflow_e2e_{uuid.uuid4().hex[:10]}"
    create_database(postgres_server, database)
    integrations = work / "integrations"
    integrations.mkdir()
    for name in ("kandji_devices_and_software", "kandji_users"):
        data = yaml.safe_load((ROOT / "include" / "integrations" / f"{name}.yaml").read_text())
        data["schedule"] = {"cron": None, "timezone": "UTC"}  # only the runs this test triggers
        (integrations / f"{name}.yaml").write_text(yaml.safe_dump(data))
    port = free_port()
    queue = f"e2e_{uuid.uuid4().hex[:8]}"
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(postgres_server, database),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url(postgres_server, database),
        # Sending a task to the broker may take longer than the default 1 s while make test's other
        # workers install whole Airflows beside it: the scheduler then failed the task before it ran.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "15",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "KANDJI_OOMNITZA_INTEGRATIONS_DIR": str(integrations),
        "AIRFLOW_CONN_KANDJI_DEFAULT": json.dumps(
            {"conn_type": "http", "host": kandji_process.url, "password": KANDJI_TOKEN}
        ),
        "AIRFLOW_CONN_OOMNITZA_DEFAULT": json.dumps(
            {"conn_type": "http", "host": oomnitza_process.url, "password": OOMNITZA_TOKEN}
        ),
    }
    homes = {"core": work / "home-core", "worker": work / "home-worker"}
    for home in homes.values():
        home.mkdir()
    core_env = {**env, "AIRFLOW_HOME": str(homes["core"])}
    worker_env = {**env, "AIRFLOW_HOME": str(homes["worker"])}
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run([*airflow, "db", "migrate"], env=core_env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]
    subprocess.run(
        [*airflow, "pools", "set", "kandji_api", "4", "Kandji API"],
        env=core_env,
        check=True,
        capture_output=True,
    )
    processes = {}
    logs = {}
    commands = {
        "api-server": (
            [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            core_env,
            homes["core"],
        ),
        "scheduler": ([*airflow, "scheduler"], core_env, homes["core"]),
        "dag-processor": ([*airflow, "dag-processor"], core_env, homes["core"]),
        "triggerer": ([*airflow, "triggerer"], core_env, homes["core"]),
        "worker": (
            [*airflow, "celery", "worker", "--queues", queue, "--concurrency", "4"],
            worker_env,
            homes["worker"],
        ),
    }
    for name, (command, process_env, cwd) in commands.items():
        logs[name] = open(work / f"{name}.log", "w")  # noqa: SIM115 - closed in teardown
        processes[name] = subprocess.Popen(
            command, env=process_env, cwd=cwd, stdout=logs[name], stderr=subprocess.STDOUT
        )
    api = f"http://127.0.0.1:{port}"
    client = requests.Session()

    def up() -> bool:
        if stopped := [n for n, p in processes.items() if p.poll() is not None]:
            tails = {n: (work / f"{n}.log").read_text()[-1500:] for n in stopped}
            pytest.fail(f"distributed Airflow: {', '.join(stopped)} stopped: {json.dumps(tails, indent=1)}")
        try:
            token = client.get(f"{api}/auth/token", timeout=30).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            return all(
                client.get(f"{api}/api/v2/dags/{dag_id}", timeout=30).status_code == 200
                for dag_id in ("kandji_preset_lock_device", "kandji_devices_and_software")
            )
        except (requests.RequestException, KeyError, ValueError):
            return False

    wait_until(
        "distributed Airflow to come up (both DAGs listed by its API server)",
        up,
        180,
        every=2,
        seen=lambda: json.dumps({n: (work / f"{n}.log").read_text()[-1500:] for n in processes}, indent=1),
    )
    yield {"api": api, "client": client, "work": work, "processes": processes,
           "database": database_url(postgres_server, database).replace("+psycopg2", "")}  # fmt: skip
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    for handle in logs.values():
        handle.close()
    drop_database(postgres_server, database)  # a throwaway database
    shutil.rmtree(work / "home-worker" / "logs", ignore_errors=True)


def trigger_and_wait(cluster, dag_id: str, conf: dict, timeout: float = 300) -> dict:
    client, api = cluster["client"], cluster["api"]
    client.patch(f"{api}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=60).raise_for_status()
    response = client.post(
        f"{api}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=60
    )
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]

    def finished() -> dict | None:
        run = client.get(f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=60).json()
        return run if run["state"] in ("success", "failed") else None

    run = wait_until(f"{dag_id} run {run_id} to finish", finished, timeout, every=2)
    tis = client.get(f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=60).json()
    return {"run": run, "tis": tis["task_instances"]}


def test_devices_integration_and_a_preset_through_the_rest_api(
    distributed, kandji_emulator, oomnitza_emulator
):
    import psycopg2

    result = trigger_and_wait(distributed, "kandji_devices_and_software", {})
    states = {ti["task_id"]: ti["state"] for ti in result["tis"]}
    assert result["run"]["state"] == "success", states
    assert set(states.values()) == {"success"}
    devices = kandji_emulator.get("devices")
    assert len(oomnitza_emulator.get("state")["records"]["assets"]) == len(devices)
    pids = [ti["pid"] for ti in result["tis"]]
    assert len(set(pids)) == len(pids), "every task ran in its own process"
    scheduler_pid = distributed["processes"]["scheduler"].pid
    assert scheduler_pid not in pids
    connection = psycopg2.connect(distributed["database"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key FROM xcom WHERE dag_id = %s AND task_id = 'transform' ORDER BY key",
            ("kandji_devices_and_software",),
        )
        transform_xcoms = [key for (key,) in cursor.fetchall()]
    connection.close()
    # The transformed frame and the report's small index travelled through the metadata database.
    assert transform_xcoms == ["index", "return_value"]

    mac = next(d for d in devices if d["platform"] == "Mac")
    lock = trigger_and_wait(distributed, "kandji_preset_lock_device", {"serial_number": mac["serial_number"]})
    assert lock["run"]["state"] == "success"
    assert len(kandji_emulator.requests("/action/lock")) == 1
    pin = next(d for d in kandji_emulator.get("devices") if d["device_id"] == mac["device_id"])["_unlock_pin"]
    worker_logs = "".join(
        p.read_text(errors="replace") for p in (distributed["work"] / "home-worker").rglob("*.log")
    )
    assert "Device Secrets" in worker_logs and pin not in worker_logs
    assert KANDJI_TOKEN not in worker_logs and OOMNITZA_TOKEN not in worker_logs
