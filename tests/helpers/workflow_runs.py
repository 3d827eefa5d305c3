"""Steering and reading the `make run` sandbox in the workflow tests: runs, approvals, the watcher's
state, and a person's edits in Oomnitza (the emulator's admin edit)."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

import requests

from helpers.sandbox import Sandbox
from helpers.waiting import wait_until

LOCK = "kandji_workflow_lost_device_lock"


RESTART = "kandji_workflow_retired_device_restart"


STOLEN = "kandji_workflow_stolen_device_lock"  # only bob may approve


POLL = 5.0


# -- helpers -------------------------------------------------------------------------------------------
def runs_of(sandbox: Sandbox, dag_id: str) -> list[dict]:
    try:
        return sandbox.get(f"dags/{dag_id}/dagRuns", limit=100, order_by="run_after")["dag_runs"]
    except requests.HTTPError as exc:
        if exc.response.status_code == 404:
            return []
        raise


def new_run(sandbox: Sandbox, dag_id: str, before: int, timeout: float = 90) -> dict:
    runs = wait_until(
        f"a run of {dag_id}", lambda: (r := runs_of(sandbox, dag_id)) and len(r) > before and r, timeout
    )
    assert len(runs) == before + 1, f"expected one new run, got {len(runs) - before}"
    return runs[-1]


def finished(sandbox: Sandbox, dag_id: str, run_id: str, timeout: float = 120) -> dict:
    def done():
        run = sandbox.get(f"dags/{dag_id}/dagRuns/{quote(run_id)}")
        return run if run["state"] in ("success", "failed") else None

    return wait_until(f"{dag_id} {run_id} to finish", done, timeout)


def tasks(sandbox: Sandbox, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
    answer = sandbox.get(f"dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances")
    return {(t["task_id"], t["map_index"]): t["state"] for t in answer["task_instances"]}


def summary_of(sandbox: Sandbox, dag_id: str, run_id: str) -> dict | None:
    answer = sandbox.api.get(
        f"{sandbox.base}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/summary/xcomEntries/summary",
        params={"deserialize": "true"},
        timeout=30,
    )
    return answer.json().get("value") if answer.status_code == 200 else None


ACTION_TASK = ("per_device.run_action", 0)  # a workflow's approval: the mapped action task


def hitl_path(dag_id: str, run_id: str, task: tuple[str, int] = ACTION_TASK) -> str:
    task_id, map_index = task
    return f"dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/{map_index}/hitlDetails"


def approval(
    sandbox: Sandbox, dag_id: str, run_id: str, times: int = 1, task: tuple[str, int] = ACTION_TASK
) -> dict:
    """The approval request once the task waits for it (for the ``times``-th time: a cleared task asks
    again)."""
    path = hitl_path(dag_id, run_id, task)

    def waiting():
        answer = sandbox.api.get(f"{sandbox.base}/api/v2/{path}", timeout=30)
        if answer.status_code != 200 or answer.json()["task_instance"]["state"] != "awaiting_input":
            return None
        return answer.json()

    request = wait_until("the approval request", waiting, timeout=120)
    # Airflow 3.3 fails the approval task when the answer lands before the scheduler has processed the
    # executor's report of the parked task (nothing is sent then: fail-safe); a person is never that
    # fast, so wait for that report as a person's slowness would.
    parked = f"task_id={task[0]}, run_id={run_id}, map_index={task[1]},"
    wait_until(
        "the scheduler to see the approval task parked",
        lambda: (
            sum(
                parked in line and "state=awaiting_input" in line
                for line in scheduler_log(sandbox).splitlines()
                if "TaskInstance Finished" in line
            )
            >= times
        ),
        timeout=60,
        every=0.5,
    )
    return request


def answer(sandbox: Sandbox, dag_id: str, run_id: str, option: str) -> None:
    path = f"dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/per_device.run_action/0/hitlDetails"
    response = sandbox.api.patch(
        f"{sandbox.base}/api/v2/{path}", json={"chosen_options": [option]}, timeout=30
    )
    assert response.status_code == 200, response.text


def edit_asset(sandbox: Sandbox, equipment_id: str, **fields) -> float:
    requests.post(
        f"{sandbox.oomnitza}/_emulator/assets/{equipment_id}", json=fields, timeout=10
    ).raise_for_status()
    return time.time()


def asset(sandbox: Sandbox, equipment_id: str) -> dict:
    return requests.get(f"{sandbox.oomnitza}/_emulator/state", timeout=30).json()["records"]["assets"][
        equipment_id
    ]


def kandji_actions(sandbox: Sandbox, device_id: str) -> list[str]:
    log = requests.get(f"{sandbox.kandji}/_emulator/requests", timeout=30).json()
    return [
        r["path"].rsplit("/", 1)[-1]
        for r in log
        if r["method"] == "POST" and f"/devices/{device_id}/action/" in r["path"]
    ]


def device_of(sandbox: Sandbox, serial: str) -> dict:
    devices = requests.get(f"{sandbox.kandji}/_emulator/devices", timeout=30).json()
    return next(d for d in devices if d["serial_number"] == serial)


def watcher_state(sandbox: Sandbox, dag_id: str) -> dict:
    assets = sandbox.get("assets", name_pattern=dag_id)["assets"]
    store = sandbox.get(f"assets/{assets[0]['id']}/state-store")
    # As stored: the state and the marks are sealed (common/seal.py); the tests read what is inside.
    return {entry["key"]: opened(entry["value"]) for entry in store["asset_state_store"]}


def opened(value):
    return value["sealed"] if isinstance(value, dict) and set(value) == {"sealed", "seal"} else value


def workflow_card(sandbox: Sandbox, dag_id: str) -> dict:
    """The workflow as the Integrations page shows it (its JSON endpoint, as the logged-in admin)."""
    answer = sandbox.api.get(f"{sandbox.base}/kandji-oomnitza/api/workflows", timeout=30)
    answer.raise_for_status()
    return next(card for card in answer.json() if card["id"] == dag_id)


def last_poll_time(sandbox: Sandbox, dag_id: str = LOCK) -> float:
    """When the watcher's last finished poll started reading Oomnitza (0 before its first)."""
    poll = watcher_state(sandbox, dag_id).get("last_poll") or {}
    return datetime.fromisoformat(poll["at"]).timestamp() if poll.get("at") else 0.0


def wait_for_polls(sandbox: Sandbox, count: int, dag_id: str = LOCK, after: float | None = None) -> None:
    """Until the watcher has finished ``count`` polls that started reading after ``after`` (now): what
    it does with a change is decided by then."""
    seen = time.time() if after is None else after
    for _ in range(count):
        seen = wait_until(
            f"a poll of the {dag_id} watcher",
            lambda since=seen: (at := last_poll_time(sandbox, dag_id)) > since and at,
            timeout=60,
            every=0.5,
        )


def triggerer_log(sandbox: Sandbox) -> str:
    return (sandbox.home / "logs" / "components" / "triggerer.log").read_text(errors="replace")


def scheduler_log(sandbox: Sandbox) -> str:
    return (sandbox.home / "logs" / "components" / "scheduler.log").read_text(errors="replace")
