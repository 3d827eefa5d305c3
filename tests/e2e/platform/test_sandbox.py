"""`make run` end to end, with the real scheduler, DAG processor, triggerer and API server: what a new user
meets in their first hour (where it listens, start-up order, a backfill, real-tenant mode)."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN
from helpers.sandbox import Sandbox
from helpers.waiting import deadline_seconds, wait_until

pytestmark = pytest.mark.e2e
USERS = "kandji_users"


def wait_for_runs(sandbox: Sandbox, dag_id: str, count: int, timeout: float = 420, **filters) -> list[dict]:
    """At least ``count`` finished runs of ``dag_id`` matching ``filters`` (run_type=...)."""

    def listed() -> list[dict]:
        try:
            return sandbox.get(f"dags/{dag_id}/dagRuns", limit=100, **filters)["dag_runs"]
        except requests.HTTPError as exc:  # 404 until the DAG processor has parsed the DAG
            if exc.response.status_code != 404:
                raise
            return []

    def finished() -> list[dict] | None:
        runs = listed()
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return done if runs and len(done) >= count and len(done) == len(runs) else None

    return wait_until(
        f"{count} finished run(s) of {dag_id}",
        finished,
        timeout,
        every=3,
        seen=lambda: [(r["run_id"], r["state"]) for r in listed()],
    )


def wait_for_scheduler_heartbeats(sandbox: Sandbox, count: int, timeout: float = 120) -> None:
    """Until the scheduler has completed ``count`` more heartbeats (loops) from now."""

    def heartbeat() -> str:
        return sandbox.get("monitor/health")["scheduler"].get("latest_scheduler_heartbeat") or ""

    seen = heartbeat()
    for number in range(1, count + 1):
        seen = wait_until(
            f"scheduler heartbeat {number} of {count} after {seen}",
            lambda since=seen: (now := heartbeat()) > since and now,
            timeout,
            every=0.5,
        )


def task_instances(sandbox: Sandbox, dag_id: str, run_id: str) -> dict[str, dict]:
    answer = sandbox.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti for ti in answer["task_instances"]}


def xcom(sandbox: Sandbox, dag_id: str, run_id: str, task_id: str, key: str):
    answer = sandbox.api.get(
        f"{sandbox.base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
        params={"deserialize": "true"},
        timeout=30,
    )
    return answer.json().get("value") if answer.status_code == 200 else None


def _listening(pids: set[int]) -> list[str]:
    """The local addresses the given processes listen on (from /proc: no tool to install)."""
    inodes = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.glob("*") if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.append(fields[1])
    return addresses


def _descendants(root: int) -> set[int]:
    """A process and everything it started, from the parent ids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = set(), [root]
    while pending:
        pid = pending.pop()
        found.add(pid)
        pending += children.get(pid, [])
    return found


def test_the_sandbox_listens_on_loopback_only(sandbox):
    addresses = _listening(_descendants(sandbox.process.pid))
    ports = {f"{port:04X}" for port in sandbox.ports.values()}
    assert {a.split(":")[1] for a in addresses} == ports, addresses  # the three it names, nothing else
    for address in addresses:  # IPv4 127.0.0.1 is 0100007F; IPv6 ::1 ends in 01000000
        host = address.split(":")[0]
        assert host in ("0100007F", "00000000000000000000000001000000"), (
            f"listening beyond loopback: {address}"
        )


def test_everything_the_sandbox_keeps_is_private_from_the_first_byte(sandbox):
    """Its home, logs and the admin's password file: never readable by others, not even while it starts
    (the sandbox runs with umask 077, so nothing is created open and closed later)."""
    import stat

    passwords = sandbox.home / "simple_auth_manager_passwords.json.generated"
    for path in (
        passwords,
        sandbox.home / "logs",
        sandbox.home / "logs" / "components",
        sandbox.home / "airflow-env.sh",
    ):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    task_logs = [p for p in (sandbox.home / "logs").rglob("*") if p.is_file()]
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in task_logs), task_logs[:3]


def test_nothing_runs_until_someone_starts_it_and_no_task_before_the_api_server_is_healthy(sandbox):
    """The tour is not front-run: the integrations are unpaused but their first scheduled run is their
    next scheduled time (shown), not a run at once; whatever runs later started after the API server
    was healthy."""
    healthy = re.search(r"API server healthy at (\S+);", sandbox.output())
    assert healthy, sandbox.output()[-2000:]
    wait_for_scheduler_heartbeats(sandbox, 2)  # a run due at once would have been created by now
    started = datetime.fromisoformat(healthy[1])
    for dag_id in (USERS, "kandji_devices_and_software"):
        dag = sandbox.get(f"dags/{dag_id}")
        assert not dag["is_paused"]
        assert (
            datetime.fromisoformat(dag["next_dagrun_run_after"]) > started
        )  # the next midnight, not the last
        assert sandbox.get(f"dags/{dag_id}/dagRuns", run_type="scheduled")["total_entries"] == 0
    assert "first scheduled run" in sandbox.output()  # the welcome text says when
    starts = [
        ti["start_date"]
        for dag in (USERS, "kandji_devices_and_software")
        for run in sandbox.get(f"dags/{dag}/dagRuns")["dag_runs"]
        for ti in task_instances(sandbox, dag, run["dag_run_id"]).values()
        if ti["start_date"]
    ]
    assert all(datetime.fromisoformat(s) >= started for s in starts)
    assert "Component logs:" in sandbox.output() and "[info" not in sandbox.output()  # Airflow logs to files


def test_a_cli_backfill_of_a_snapshot_sync_reads_kandji_once_and_never_moves_data_backwards(sandbox):
    """The README's `airflow backfill create` against the running sandbox (PostgreSQL, so no "database is
    locked"), first time: three dates, one real sync (the newest), the others skipped with their reason."""
    import subprocess

    today = datetime.fromisoformat(sandbox.get(f"dags/{USERS}")["next_dagrun_logical_date"]) - timedelta(
        days=1
    )
    env_file = sandbox.home / "airflow-env.sh"
    command = (
        f"source {env_file} && airflow backfill create --dag-id {USERS} "
        f"--from-date {(today - timedelta(days=2)).isoformat()} --to-date {today.isoformat()} "
        "--max-active-runs 3 --reprocess-behavior completed"
    )
    created = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
    )
    assert created.returncode == 0, (created.stdout[-2000:], created.stderr[-3000:])
    assert "Traceback" not in created.stderr and "database is locked" not in created.stderr
    runs = wait_for_runs(sandbox, USERS, 3, run_type="backfill", timeout=600)
    assert len(runs) == 3 and all(r["state"] == "success" for r in runs), runs

    synced, windows = [], []
    for run in runs:
        tis = task_instances(sandbox, USERS, run["dag_run_id"])
        if tis["newest_run_only"]["state"] == "skipped":
            assert all(ti["state"] == "skipped" for ti in tis.values()), tis
            reason = xcom(sandbox, USERS, run["dag_run_id"], "newest_run_only", "skipped")
            assert "a newer run of this integration exists" in reason
            continue
        synced.append(run)
        worked = [ti for ti in tis.values() if ti["state"] in ("success", "failed") and ti["start_date"]]
        windows.append((min(t["start_date"] for t in worked), max(t["end_date"] for t in worked)))
    assert (
        len(synced) == 1 and datetime.fromisoformat(synced[0]["logical_date"]) == today
    )  # the newest date only
    newest_read = xcom(sandbox, USERS, synced[0]["dag_run_id"], "extract", "stats")["read_at"]
    # Every user Oomnitza knows carries the newest read, never an older date.
    users = (
        requests.get(f"{sandbox.oomnitza}/_emulator/state", timeout=30).json()["records"]["users"].values()
    )
    times = {u.get("kandji_connector_sync_time") for u in users if u.get("kandji_user_id")}
    assert times == {newest_read}, times
    # The backfill's other runs never ran beside it (only one run did any work at all).
    assert len(windows) == 1


def test_real_tenants_start_paused_and_nothing_runs(tmp_path, kandji_process, oomnitza_process):
    connections = {
        "AIRFLOW_CONN_KANDJI_DEFAULT": json.dumps(
            {"conn_type": "http", "host": kandji_process.url, "password": KANDJI_TOKEN}
        ),
        "AIRFLOW_CONN_OOMNITZA_DEFAULT": json.dumps(
            {"conn_type": "http", "host": oomnitza_process.url, "password": OOMNITZA_TOKEN}
        ),
    }
    kandji_process.admin.clear_requests()
    jwt_secret = "real-tenant-jwt-secret-5c1e9a7d"  # a deployment's own signing key, exported
    real = Sandbox(tmp_path / "real", AIRFLOW__API_AUTH__JWT_SECRET=jwt_secret, **connections)
    try:
        assert "The integration DAGs start PAUSED" in real.output()
        assert "Kandji emulator:" not in real.output()  # no emulator starts for real tenants
        dags = wait_until(
            "the DAG processor to list both integrations",
            lambda: (
                (listed := {d["dag_id"]: d for d in real.get("dags", limit=100)["dags"]})
                and {"kandji_devices_and_software", USERS} <= set(listed)
                and listed
            ),
            120,
            every=2,
        )
        assert dags["kandji_devices_and_software"]["is_paused"] and dags[USERS]["is_paused"]
        wait_for_scheduler_heartbeats(real, 2)  # an unpaused daily DAG would have queued its run by now
        assert real.get("dags/~/dagRuns")["total_entries"] == 0
        assert kandji_process.admin.requests("^/api/") == []  # nothing called the tenant
        cli_env = (real.home / "airflow-env.sh").read_text()
        assert (
            "AIRFLOW_CONN_" not in cli_env and KANDJI_TOKEN not in cli_env and OOMNITZA_TOKEN not in cli_env
        )
        assert jwt_secret not in cli_env and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in cli_env
        for private in ("airflow-env.sh", "simple_auth_manager_passwords.json.generated", "airflow.cfg"):
            assert (real.home / private).stat().st_mode & 0o077 == 0, f"{private} is readable by others"
    finally:
        real.stop()


def test_the_welcome_text_gives_an_airflow_cli_on_the_sandbox(sandbox):
    """What the README tells a newcomer to do for `airflow backfill`, `airflow dags test` and the like."""
    import subprocess

    env_file = sandbox.home / "airflow-env.sh"
    assert f"source {env_file}" in sandbox.output()

    def listed_dag_ids() -> set[str]:
        listed = subprocess.run(
            ["bash", "-c", f"source {env_file} && airflow dags list -o json"],
            capture_output=True,
            text=True,
            timeout=deadline_seconds(120),
            env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
        listing = [line for line in listed.stdout.splitlines() if line.startswith("[{")]  # past any warning
        return {d["dag_id"] for d in json.loads(listing[0])} if listing else set()

    # until the DAG processor has run
    dag_ids = wait_until(
        "airflow dags list to list the users integration",
        lambda: ids if USERS in (ids := listed_dag_ids()) else None,
        120,
        every=2,
    )
    assert {"kandji_devices_and_software", USERS, "kandji_preset_lock_device"} <= dag_ids
