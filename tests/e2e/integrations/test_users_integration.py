"""The users + SaaS users integration DAG, end to end (dag.test) against both emulators over loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from helpers.harness import KANDJI_TOKEN, ROOT

DEFAULT_FILE = ROOT / "include" / "integrations" / "kandji_users.yaml"


@pytest.fixture
def users_dag(integration_dag_from):
    return lambda **changes: integration_dag_from("kandji_users", **changes)


def oomnitza_users(admin) -> dict[str, dict]:
    state = admin.get("state")
    return {
        u["email"]: u | {"_saas": state["saas"].get(u["user_id"])} for u in state["records"]["users"].values()
    }


def error_log(summary) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(summary["error_log"].removeprefix("file://")).read_text())))


@pytest.fixture
def users_fleet(kandji_emulator):
    kandji_emulator.post(
        "reset", {"devices": 20, "users": 700, "seed": 7, "tokens": [KANDJI_TOKEN], "rate_limit": {}}
    )
    return kandji_emulator.get("users")


@pytest.mark.e2e
def test_update_only_updates_existing_users_and_creates_none(
    run_dag, users_fleet, kandji_emulator, oomnitza_emulator
):
    known = users_fleet[:5]
    oomnitza_emulator.post("records/users", [{"email": u["email"], "full_name": "Old Name"} for u in known])
    result = run_dag("kandji_users")
    summary = result.xcom("report")
    assert result.state == "success"  # skipped by the preference: reported, not a failure
    assert summary["failures"] == summary["not_loaded"] == 0  # skipped by the preference is not a failure
    assert summary["updated"] == 5 and summary["added"] == 0 and summary["skipped"] == len(users_fleet) - 5
    users = oomnitza_users(oomnitza_emulator)
    assert set(users) == {u["email"] for u in known}
    for user in known:
        stored = users[user["email"]]
        assert stored["full_name"] == user["name"] and stored["kandji_user_id"] == user["id"]
        assert stored["kandji_user_is_archived"] is user["archived"]
        assert stored["kandji_connector_sync_time"].endswith("Z")
    rows = error_log(summary)
    assert len(rows) == len(users_fleet) - 5
    assert all("not in Oomnitza, so not created (the preference is update only)" in r["reason"] for r in rows)
    # Cursor paging over three pages; the `next` links name the web host, never followed.
    calls = kandji_emulator.requests("/api/v1/users$")
    assert len(calls) == 3 and all(c["token_ok"] for c in calls) and "cursor" in calls[2]["query"]


@pytest.mark.e2e
def test_create_and_update_creates_and_marks_saas_users(run_dag, users_dag, users_fleet, oomnitza_emulator):
    result = run_dag(users_dag(preference="create_and_update"))
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["added"] == len(users_fleet)
    users = oomnitza_users(oomnitza_emulator)
    for user in users_fleet:
        status = "archived" if user["archived"] else "active"
        assert users[user["email"]]["_saas"] == [{"name": "Kandji", "status": status}]
    assert any(u["archived"] for u in users_fleet)


@pytest.mark.e2e
def test_user_selection_without_saas(run_dag, users_dag, users_fleet, oomnitza_emulator):
    result = run_dag(users_dag(preference="create_and_update", users={"selection": "user"}))
    assert result.state == "success"
    assert all(u["_saas"] is None for u in oomnitza_users(oomnitza_emulator).values())
    bulk = oomnitza_emulator.requests("^/api/v3/bulk$", "POST")
    assert all("SAAS" not in r for call in bulk for r in call["body"]["records"])


@pytest.mark.e2e
def test_skip_archived_users(run_dag, users_dag, users_fleet, kandji_emulator, oomnitza_emulator):
    result = run_dag(users_dag(preference="create_and_update", users={"skip_archived": True}))
    assert result.state == "success"
    active = [u for u in users_fleet if not u["archived"]]
    assert set(oomnitza_users(oomnitza_emulator)) == {u["email"] for u in active}
    assert all(c["query"].get("archived") == "false" for c in kandji_emulator.requests("/api/v1/users$"))


@pytest.mark.e2e
def test_only_users_of_given_directory_integrations(run_dag, users_dag, users_fleet, oomnitza_emulator):
    okta = next(u["integration"] for u in users_fleet if u["integration"]["type"] == "okta")
    result = run_dag(users_dag(preference="create_and_update", users={"integration_ids": [okta["uuid"]]}))
    assert result.state == "success"
    expected = {u["email"] for u in users_fleet if u["integration"]["uuid"] == okta["uuid"]}
    assert set(oomnitza_users(oomnitza_emulator)) == expected


@pytest.mark.e2e
def test_users_without_email_are_rejected_with_a_reason(
    run_dag, users_dag, users_fleet, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.post("users", {"email": "", "name": "No Mail"})
    kandji_emulator.post("users", {"email": None, "name": "Null Mail"})
    result = run_dag(users_dag(preference="create_and_update"))
    summary = result.xcom("report", key="summary")
    assert result.state == "failed" and summary["rejected_before_load"] == 2
    assert summary["added"] == len(users_fleet)
    rows = error_log(summary)
    assert {r["name"] for r in rows} == {"No Mail", "Null Mail"}
    assert all("sync key email is empty (Kandji User Email has no value)" in r["reason"] for r in rows)
    errors = [c["body"] for c in oomnitza_emulator.requests("^/api/v3/bulk$", "POST") if c["body"]["error"]]
    assert sum(len(b["records"]) for b in errors) == 2


@pytest.mark.e2e
def test_custom_user_mappings(run_dag, users_dag, users_fleet, oomnitza_emulator):
    model = oomnitza_emulator.get("state")["data_model"]
    model["users"] += [
        {"field": f, "type": "string", "unique": False, "searchhelp": []} for f in ("department", "directory")
    ]
    oomnitza_emulator.put("data_model", model)
    mappings = yaml.safe_load(DEFAULT_FILE.read_text())["mappings"] | {
        "department": {"path": "department"},
        "directory": {"path": "integration.type", "converter": "upper"},
        "position": {"path": "job_title"},
    }
    result = run_dag(users_dag(preference="create_and_update", mappings=mappings))
    assert result.state == "success", result.task_states
    users = oomnitza_users(oomnitza_emulator)
    for user in users_fleet:
        stored = users[user["email"]]
        assert stored["directory"] == user["integration"]["type"].upper()
        assert stored.get("department") == user["department"] and stored.get("position") == user["job_title"]


@pytest.mark.e2e
def test_users_without_an_id_are_each_rejected_not_merged(
    run_dag, users_dag, users_fleet, kandji_emulator, oomnitza_emulator
):
    for name in ("Null Id One", "Null Id Two", "Null Id Three"):
        kandji_emulator.post(
            "users", {"id": None, "email": f"{name.replace(' ', '.').lower()}@example.com", "name": name}
        )
    result = run_dag(users_dag(preference="create_and_update"))
    summary = result.xcom("report", key="summary")
    assert summary["kandji_records"] == len(users_fleet) + 3  # none merged into another
    assert summary["rejected_before_load"] == 3 and summary["added"] == len(users_fleet)
    rows = error_log(summary)
    assert {r["name"] for r in rows} == {"Null Id One", "Null Id Two", "Null Id Three"}
    assert all(r["reason"] == "the Kandji record has no id" for r in rows)
