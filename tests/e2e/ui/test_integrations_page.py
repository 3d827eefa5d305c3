"""The Integrations page's JSON endpoints, served by a real `airflow api-server` over loopback.

The server shares the test session's metadata DB, so runs made here with ``dag.test()`` are what the page
reports. Users come from Airflow's simple auth manager: an admin, a viewer (may read DAGs, not trigger
them), a user (may trigger) and a user with no role (may read nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import requests
import yaml
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT, free_port
from helpers.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("integrations_page")]
PAGE = "/kandji-oomnitza"
DEVICES = "kandji_devices_and_software"
USERS = {"admin": "admin", "viewer": "viewer", "runner": "user", "nobody": "", "dagonly": "viewer"}
BROKEN_FILE = {
    "name": "Broken on purpose",
    "type": "assets",
    "sync_key": "serial_number",
    "mappings": {"serial_number": "Serial Numbr"},  # a misspelt standard field
}
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(7)
)


@pytest.fixture(scope="module")
def page_server(airflow_db, tmp_path_factory):
    work = tmp_path_factory.mktemp("integrations-page")
    integrations = work / "integrations"
    integrations.mkdir()
    for name in (f"{DEVICES}.yaml", "kandji_users.yaml"):
        shutil.copy(ROOT / "include" / "integrations" / name, integrations / name)
    (integrations / "broken_tile.yaml").write_text(yaml.safe_dump(BROKEN_FILE))
    (integrations / "alias_bomb.yaml").write_text(ALIAS_BOMB)
    # An integration whose Oomnitza connection holds credentials in its host: never shown on a tile.
    users_file = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_users.yaml").read_text())
    users_file["oomnitza_conn_id"] = "oomnitza_userinfo"
    (integrations / "userinfo_host.yaml").write_text(yaml.safe_dump(users_file))
    workflows = work / "workflows"
    workflows.mkdir()
    lock = (ROOT / "include" / "workflows" / "lost_device_lock.yaml").read_text()
    (workflows / "lost_device_lock.yaml").write_text(lock.replace("enabled: false", "enabled: true"))
    passwords = {user: f"{user}-secret-pw" for user in USERS}
    (work / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(work / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        # The simple auth manager plus a user who may read the DAGs but not their XComs or task logs.
        "AIRFLOW__CORE__AUTH_MANAGER": "helpers.page_auth.DagOnlyAuthManager",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests"), str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
        "AIRFLOW_CONN_OOMNITZA_USERINFO": json.dumps(
            {
                "conn_type": "http",
                "host": "https://someone:hunter2@acme.oomnitza.com",
                "password": OOMNITZA_TOKEN,
            }
        ),
        "KANDJI_OOMNITZA_INTEGRATIONS_DIR": str(integrations),
        "KANDJI_OOMNITZA_WORKFLOWS_DIR": str(workflows),
        # The page names the tenant and the instance from the connections, never their tokens.
        "AIRFLOW_CONN_KANDJI_DEFAULT": json.dumps(
            {"conn_type": "http", "password": KANDJI_TOKEN, "extra": {"subdomain": "acme", "region": "eu"}}
        ),
        "AIRFLOW_CONN_OOMNITZA_DEFAULT": json.dumps(
            {"conn_type": "http", "host": "https://acme.oomnitza.com", "password": OOMNITZA_TOKEN}
        ),
    }
    log = open(work / "api-server.log", "w")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail("the API server stopped:\n" + (work / "api-server.log").read_text()[-3000:])
        try:
            return requests.get(f"{base}/api/v2/monitor/health", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    wait_until(
        "the API server to answer its health check",
        healthy,
        timeout=120,
        seen=lambda: (work / "api-server.log").read_text()[-3000:],
    )

    def session_of(user: str) -> requests.Session:
        session = requests.Session()
        answer = session.post(
            f"{base}/auth/token", json={"username": user, "password": passwords[user]}, timeout=10
        )
        answer.raise_for_status()
        session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return session

    yield {"base": base, "as": session_of, "log": work / "api-server.log"}
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def get(server, user: str | None, path: str) -> requests.Response:
    client = server["as"](user) if user else requests.Session()
    return client.get(server["base"] + PAGE + path, timeout=30)


def test_the_page_and_its_data_need_a_login(page_server):
    page = get(page_server, None, "/")
    assert page.status_code == 200 and "static/page.js" in page.text
    assert get(page_server, None, "/static/page.js").status_code == 200
    answer = get(page_server, None, "/api/integrations")
    assert answer.status_code == 401, answer.text


def test_a_user_who_may_not_read_the_dags_sees_no_integration(page_server):
    answer = get(page_server, "nobody", "/api/integrations")
    assert answer.status_code == 403
    assert "read access" in answer.json()["detail"]
    assert get(page_server, "nobody", f"/api/integrations/{DEVICES}").status_code == 403


def test_tiles_show_each_file_and_an_invalid_file_shows_its_error(page_server):
    answer = get(page_server, "admin", "/api/integrations")
    assert answer.status_code == 200, answer.text
    assert KANDJI_TOKEN not in answer.text and OOMNITZA_TOKEN not in answer.text
    tiles = {t["id"]: t for t in answer.json()}
    assert sorted(tiles) == ["alias_bomb", "broken_tile", DEVICES, "kandji_users", "userinfo_host"]
    assert len(answer.content) < 50_000, "an alias bomb must not blow up the page"
    assert "aliases (*name) are not allowed" in tiles["alias_bomb"]["error"]
    userinfo = tiles["userinfo_host"]["oomnitza"]
    assert userinfo["host"] is None and "user name or password" in userinfo["problem"]
    assert "hunter2" not in answer.text and "someone" not in answer.text

    broken = tiles["broken_tile"]
    assert broken["valid"] is False and broken["can_trigger"] is False
    assert "mappings.serial_number" in broken["error"] and "did you mean 'Serial Number'" in broken["error"]

    devices, users = tiles[DEVICES], tiles["kandji_users"]
    assert (
        devices["valid"] and devices["name"] == "Kandji Devices and Software" and devices["type"] == "assets"
    )
    assert devices["kandji"] == {
        "connection_id": "kandji_default",
        "host": "acme.api.eu.kandji.io",
        "problem": None,
    }
    assert devices["oomnitza"]["host"] == "acme.oomnitza.com"
    assert devices["preference"] == "create_and_update" and devices["software"] == "on (auto route)"
    assert devices["sync_key"] == ["serial_number"]
    assert devices["schedule"]["cron"] == "@daily" and devices["schedule"]["timezone"] == "UTC"
    assert users["type"] == "users" and users["user_selection"] == "user_plus_saas_user"
    assert (
        users["preference"] == "update_only" and users["software"] is None and users["sync_key"] == ["email"]
    )


def test_a_connection_that_cannot_be_used_is_named_instead_of_a_host(airflow_db, airflow_connections):
    from kandji_oomnitza.ui.page.overview import kandji_endpoint, oomnitza_endpoint

    missing = kandji_endpoint("kandji_missing")
    assert missing.host is None and "kandji_missing" in missing.problem
    airflow_connections("oomnitza_bad", host="not a url", password=OOMNITZA_TOKEN)
    bad = oomnitza_endpoint("oomnitza_bad")
    assert bad.host is None and "host" in bad.problem and OOMNITZA_TOKEN not in bad.problem


def test_detail_shows_the_mapping_table_runs_counts_and_error_log(
    page_server, run_dag, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.post("devices", {"serial_number": "", "platform": "Mac"})  # rejected: no sync key
    result = run_dag(DEVICES)
    assert result.state == "failed"  # one record not loaded: the run fails after loading the rest
    summary = result.xcom("report", key="summary")

    answer = get(page_server, "admin", f"/api/integrations/{DEVICES}")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert KANDJI_TOKEN not in answer.text and OOMNITZA_TOKEN not in answer.text
    assert detail["in_airflow"] is True and detail["can_trigger"] is True

    shipped = yaml.safe_load((ROOT / "include" / "integrations" / f"{DEVICES}.yaml").read_text())
    rows = {m["oomnitza_field"]: m for m in detail["mappings"]}
    assert list(rows) == list(shipped["mappings"])
    assert [f for f, m in rows.items() if m["sync_key"]] == ["serial_number"]
    assert rows["serial_number"] == {
        "oomnitza_field": "serial_number",
        "source_kind": "standard",
        "source": "Serial Number",
        "kandji_paths": ["serial_number"],
        "converter": None,
        "when_empty": "keep Oomnitza's value",
        "sync_key": True,
    }
    assert rows["kandji_last_check_in"]["converter"] == "date"
    assert rows["assigned_to"]["kandji_paths"] == ["user.email"]

    run = next(r for r in detail["runs"] if r["run_id"] == result.run_id)
    assert run["state"] == "failed" and run["has_summary"] and run["has_error_log"]
    assert run["counts"] == {k: summary[k] for k in ("added", "updated", "unchanged", "skipped", "failed")}
    assert run["kandji_records"] == summary["kandji_records"] and run["not_loaded"] == 1
    assert detail["when_missing"] == "left as they are (when_missing is off)"
    assert run["flagged_as_missing"] == 0 and run["when_missing"] == "off"
    assert detail["delta"] == "off" and run["delta"] == "off" and run["skipped_unchanged"] == 0
    assert run["airflow_url"].startswith(f"dags/{DEVICES}/runs/") and "+" not in run["airflow_url"]
    assert detail["last_run"]["run_id"] == detail["runs"][0]["run_id"]

    errors = get(page_server, "admin", f"/api/integrations/{DEVICES}/runs/{result.run_id}/errors")
    assert errors.status_code == 200, errors.text
    log = errors.json()
    assert log["total_rows"] == 1 and not log["truncated"]
    assert "sync key serial_number is empty" in log["rows"][0]["reason"]
    assert log["location"] == summary["error_log"]

    missing = get(page_server, "admin", f"/api/integrations/{DEVICES}/runs/not-a-run/errors")
    assert missing.status_code == 404
    traversal = get(page_server, "admin", f"/api/integrations/{DEVICES}/runs/..%2F..%2Fetc/errors")
    assert traversal.status_code == 404
    assert get(page_server, "admin", "/api/integrations/no_such_integration").status_code == 404


def test_run_now_is_offered_to_who_may_trigger_and_airflow_enforces_it(
    page_server, run_dag, kandji_emulator, oomnitza_emulator
):
    assert run_dag("kandji_users").state == "success"  # the DAG exists in the metadata DB
    viewer_tile = get(page_server, "viewer", "/api/integrations/kandji_users").json()
    runner_tile = get(page_server, "runner", "/api/integrations/kandji_users").json()
    assert viewer_tile["can_trigger"] is False and runner_tile["can_trigger"] is True

    body = {"logical_date": None, "conf": {"dry_run": True}}
    trigger = f"{page_server['base']}/api/v2/dags/kandji_users/dagRuns"
    refused = page_server["as"]("viewer").post(trigger, json=body, timeout=30)
    assert refused.status_code == 403
    created = page_server["as"]("runner").post(trigger, json=body, timeout=30)
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    try:
        runs = get(page_server, "runner", "/api/integrations/kandji_users").json()["runs"]
        new = next(r for r in runs if r["run_id"] == run_id)
        assert new["dry_run"] is True and new["state"] == "queued" and new["counts"] is None
        assert new["run_type"] == "manual"
    finally:  # no scheduler here: the queued run would otherwise stay behind in the session DB
        page_server["as"]("admin").delete(f"{trigger}/{run_id}", timeout=30).raise_for_status()


def test_a_delta_run_shows_its_mode_and_what_it_did_not_send(
    page_server, run_dag, integration_dag_from, kandji_emulator, oomnitza_emulator
):
    """Delta loads on: the first run is full (and says why), the second sends nothing unchanged; the page
    shows each run's mode and the unchanged-not-sent count, and no error log for a run that listed none."""
    from pathlib import Path

    from kandji_oomnitza.integrations.delta import store_path
    from kandji_oomnitza.integrations.storage import default_reports_root

    store = Path(str(store_path(default_reports_root(), DEVICES)).removeprefix("file://"))
    store.unlink(missing_ok=True)
    try:
        dag = integration_dag_from(DEVICES, delta={"enabled": True, "full_sync_every": "7d"})
        first, second = run_dag(dag), run_dag(dag)
        assert first.state == second.state == "success", (first.task_states, second.task_states)
        summary = second.xcom("report")
        runs = {
            r["run_id"]: r for r in get(page_server, "admin", f"/api/integrations/{DEVICES}").json()["runs"]
        }
    finally:
        store.unlink(missing_ok=True)
    assert runs[first.run_id]["delta"].startswith("full: no fingerprints yet")
    late = runs[second.run_id]
    assert late["delta"] == "delta" and late["records_sent"] == 0
    assert late["skipped_unchanged"] == summary["skipped_unchanged"] == summary["kandji_records"] > 0
    assert late["has_error_log"] is False  # its error log is a header only


def test_summaries_need_xcom_access_and_error_logs_need_task_log_access(
    page_server, run_dag, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.post("devices", {"serial_number": "", "platform": "Mac"})  # one error-log row
    result = run_dag(DEVICES)
    admin_run = next(
        r
        for r in get(page_server, "admin", f"/api/integrations/{DEVICES}").json()["runs"]
        if r["run_id"] == result.run_id
    )
    assert admin_run["has_summary"] and admin_run["counts"] and admin_run["has_error_log"]
    detail = get(page_server, "dagonly", f"/api/integrations/{DEVICES}")
    assert detail.status_code == 200  # the DAG itself may be read
    run = next(r for r in detail.json()["runs"] if r["run_id"] == result.run_id)
    assert run["summary_hidden"] is True and run["counts"] is None and run["kandji_records"] is None
    assert run["has_error_log"] is False and run["state"] == "failed"
    tiles = get(page_server, "dagonly", "/api/integrations").json()
    assert all((t.get("last_run") or {}).get("counts") is None for t in tiles)
    errors = get(page_server, "dagonly", f"/api/integrations/{DEVICES}/runs/{result.run_id}/errors")
    assert errors.status_code == 403 and "task-log access" in errors.json()["detail"]


def test_workflow_approvals_and_the_watchers_poll_show_only_to_who_may_read_them(page_server, airflow_db):
    """Approval requests (serial, device name, approvers) are Airflow's human-in-the-loop details, and the
    watcher's last poll is its asset's state: a user who may read the DAG but neither of those sees
    neither, only that they are hidden."""
    from airflow.models.asset import AssetModel
    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    lock = "kandji_workflow_lost_device_lock"
    poll = {"at": "2026-11-28T10:00:00+00:00", "ok": True, "matching": 3, "started": 1, "warnings": []}
    with create_session() as session:  # what the watcher writes in the triggerer
        asset = session.scalar(select(AssetModel).where(AssetModel.name == lock))
        if asset is None:
            asset = AssetModel(name=lock, uri="kandji-workflow://lost_device_lock", group="asset")
            session.add(asset)
            session.flush()
        session.merge(AssetStateStoreModel(asset_id=asset.id, key="last_poll", value=json.dumps(poll)))
    cards = {c["id"]: c for c in get(page_server, "admin", "/api/workflows").json()}
    assert cards[lock]["last_poll"] == poll
    assert not cards[lock]["last_poll_hidden"] and not cards[lock]["approvals_hidden"]
    hidden = {c["id"]: c for c in get(page_server, "dagonly", "/api/workflows").json()}[lock]
    assert hidden["trigger"] == cards[lock]["trigger"]  # the DAG itself may be read
    assert hidden["last_poll"] is None and hidden["last_poll_hidden"]
    assert hidden["approvals_waiting"] == [] and hidden["approvals_hidden"]
