"""Delta loads, end to end (dag.test) against both emulators: Oomnitza hears only about records that
changed since it last confirmed them, with full syncs when due, asked for, or when the file changed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers.harness import KANDJI_TOKEN, days_ago, oomnitza_assets, patch_record

DEVICES = "kandji_devices_and_software"
DELTA = {"enabled": True, "full_sync_every": "7d"}


@pytest.fixture
def store(airflow_db):
    """The devices integration's fingerprint store (the default reports path), removed before and after."""
    from kandji_oomnitza.integrations.delta import store_path
    from kandji_oomnitza.integrations.storage import default_reports_root

    paths = [
        Path(str(store_path(default_reports_root(), name)).removeprefix("file://"))
        for name in (DEVICES, "kandji_users")
    ]
    for path in paths:
        path.unlink(missing_ok=True)
    yield paths[0]
    for path in paths:
        path.unlink(missing_ok=True)


def stored(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


@pytest.fixture
def delta_dag(integration_dag_from):
    return lambda **changes: integration_dag_from(DEVICES, delta=DELTA, **changes)


@pytest.mark.e2e
def test_unchanged_fleet_sends_nothing_and_one_change_sends_one_record(
    run_dag, delta_dag, small_fleet, kandji_emulator, oomnitza_emulator, store
):
    dag = delta_dag()
    first = run_dag(dag)
    summary = first.xcom("report")
    assert first.state == "success", first.task_states
    assert summary["delta"].startswith("full: no fingerprints yet")
    assert summary["records_sent"] == summary["kandji_records"] == 30 and summary["skipped_unchanged"] == 0
    assert summary["next_full_sync"] > summary["read_at"]
    state = stored(store)
    assert len(state["records"]) == 30 and all(fp for fp, _ in state["records"].values())
    times = {s: a["kandji_connector_sync_time"] for s, a in oomnitza_assets(oomnitza_emulator).items()}

    oomnitza_emulator.clear_requests()
    second = run_dag(dag)
    summary = second.xcom("report")
    assert second.state == "success"
    assert summary["delta"] == "delta" and summary["records_sent"] == 0
    assert summary["skipped_unchanged"] == summary["records_seen"] == 30 and summary["records_changed"] == 0
    assert not oomnitza_emulator.requests("^/api/v3/bulk$")  # only the fixed calls
    assert {
        s: a["kandji_connector_sync_time"] for s, a in oomnitza_assets(oomnitza_emulator).items()
    } == times

    changed = small_fleet[4]
    kandji_emulator.patch(f"devices/{changed['device_id']}", {"device_name": "Renamed in Kandji"})
    third = run_dag(dag)
    summary = third.xcom("report")
    assert summary["records_sent"] == 1 and summary["updated"] == 1 and summary["skipped_unchanged"] == 29
    assets = oomnitza_assets(oomnitza_emulator)
    assert assets[changed["serial_number"]]["device_name"] == "Renamed in Kandji"
    assert assets[changed["serial_number"]]["kandji_connector_sync_time"] != times[changed["serial_number"]]
    assert summary["app_rows_sent"] == len(assets[changed["serial_number"]]["_software"] or [])


@pytest.mark.e2e
def test_records_oomnitza_did_not_confirm_are_sent_again(
    run_dag, delta_dag, small_fleet, kandji_emulator, oomnitza_emulator, store
):
    dag = delta_dag(load={"max_failed_records": 100})
    # Oomnitza refuses iPhones' platform value: those records fail in run 1 and must go again in run 2.
    model = oomnitza_emulator.get("state")["data_model"]
    for entry in model["assets"]:
        if entry["field"] == "kandji_platform":
            entry.update(type="dropdown", searchhelp=["Mac", "iPad", "AppleTV", "Windows", "Android"])
    oomnitza_emulator.put("data_model", model)
    first = run_dag(dag)
    failed = first.xcom("report")["failed"]
    iphones = sum(1 for d in small_fleet if d["platform"] == "iPhone")
    assert failed == iphones > 0
    second = run_dag(dag)
    summary = second.xcom("report")
    assert summary["records_sent"] == iphones and summary["failed"] == iphones

    # A run whose outcome cannot be read (a crash between send and confirmation, as far as the store
    # is concerned) confirms nothing it sent: the next run sends those records again.
    kandji_emulator.patch(f"devices/{small_fleet[0]['device_id']}", {"device_name": "Changed once"})
    oomnitza_emulator.faults(
        scripted=[{"kind": "status", "status": 503, "path": "connector_run_logs", "times": 1000}]
    )
    lost = run_dag(dag)
    assert lost.xcom("report")["records_sent"] == iphones + (small_fleet[0]["platform"] != "iPhone")
    oomnitza_emulator.clear_faults()
    again = run_dag(dag)
    assert again.xcom("report")["records_sent"] == iphones + (small_fleet[0]["platform"] != "iPhone")


@pytest.mark.e2e
def test_file_change_full_sync_conf_and_the_full_sync_interval_force_a_full_send(
    run_dag, delta_dag, integration_dag_from, small_fleet, oomnitza_emulator, store
):
    assert run_dag(delta_dag()).state == "success"
    forced = run_dag(delta_dag(), conf={"full_sync": True}).xcom("report")
    assert (
        forced["delta"] == "full: full_sync was asked for in the run's conf" and forced["records_sent"] == 30
    )

    changed_file = integration_dag_from(
        DEVICES, delta=DELTA, mappings={**_shipped_mappings(), "manufacturer": {"constant": "Apple"}}
    )
    summary = run_dag(changed_file).xcom("report")
    assert summary["delta"].startswith("full: the integration file's") and summary["records_sent"] == 30
    assert run_dag(changed_file).xcom("report")["records_sent"] == 0

    state = stored(store)
    state["last_full_sync"] = days_ago(8)
    store.write_bytes(gzip.compress(json.dumps(state).encode()))
    due = run_dag(changed_file).xcom("report")
    assert due["delta"].startswith("full: the last full sync") and due["records_sent"] == 30
    assert due["next_full_sync"] > days_ago(-6.9)

    store.write_bytes(b"not gzip")  # a torn or foreign store: a full send, with a warning
    torn = run_dag(changed_file)
    assert torn.xcom("report")["delta"].startswith("full: the fingerprint store could not be read")
    assert "this run sends every record" in torn.log


def _shipped_mappings() -> dict:
    import yaml
    from helpers.harness import ROOT

    return yaml.safe_load((ROOT / "include" / "integrations" / f"{DEVICES}.yaml").read_text())["mappings"]


@pytest.mark.e2e
def test_dry_run_shows_what_a_delta_run_would_send(
    run_dag, delta_dag, small_fleet, kandji_emulator, oomnitza_emulator, store
):
    dag = delta_dag()
    assert run_dag(dag).state == "success"
    before = stored(store)
    kandji_emulator.patch(f"devices/{small_fleet[1]['device_id']}", {"device_name": "Dry"})
    dry = run_dag(dag, conf={"dry_run": True}).xcom("report")
    assert dry["would_send"] == 1 and dry["skipped_unchanged"] == 29 and dry["delta"] == "delta"
    assert stored(store) == before  # a dry run confirms nothing


@pytest.mark.e2e
def test_users_delta_and_when_missing_counts_from_last_seen(
    run_dag, integration_dag_from, kandji_emulator, oomnitza_emulator, store
):
    kandji_emulator.post(
        "reset", {"devices": 5, "users": 30, "seed": 3, "tokens": [KANDJI_TOKEN], "rate_limit": {}}
    )
    users = kandji_emulator.get("users")
    dag = integration_dag_from(
        "kandji_users",
        preference="create_and_update",
        delta=DELTA,
        when_missing={"after_days": 3, "set": {"kandji_status": "Not in Kandji"}},
    )
    assert run_dag(dag).xcom("report")["records_sent"] == 30
    # Under delta, an unchanged user is not sent: its Connector Sync Time in Oomnitza ages (here: 10 days).
    target = users[0]
    ident = {u["email"]: u for u in oomnitza_emulator.get("state")["records"]["users"].values()}[
        target["email"]
    ]["user_id"]
    patch_record(oomnitza_emulator, "users", ident, {"kandji_connector_sync_time": days_ago(10)})
    second = run_dag(dag).xcom("report")
    assert second["records_sent"] == 0 and second["flagged_as_missing"] == 0
    # Gone from Kandji now, but the store saw it minutes ago: not gone for 3 days, not flagged.
    kandji_emulator.delete(f"users/{target['id']}")
    third = run_dag(dag).xcom("report")
    assert third["flagged_as_missing"] == 0 and third["records_sent"] == 0
    stored_users = {u["email"]: u for u in oomnitza_emulator.get("state")["records"]["users"].values()}
    assert stored_users[target["email"]].get("kandji_status") != "Not in Kandji"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("last_full_sync", "why"),
    [
        ("2026-11-28 10:00", "is not a time like 2026-11-28T10:00:00Z"),
        (days_ago(-30), "is in the future"),  # would keep delta mode on for ever
    ],
    ids=["unreadable", "future"],
)
def test_an_unreadable_or_implausible_store_means_a_full_sync_with_a_warning(
    run_dag, delta_dag, small_fleet, oomnitza_emulator, store, last_full_sync, why
):
    dag = delta_dag()
    assert run_dag(dag).state == "success"
    state = stored(store)
    state["last_full_sync"] = last_full_sync
    store.write_bytes(gzip.compress(json.dumps(state).encode()))
    for conf in ({"dry_run": True}, {"dry_run": False}):
        result = run_dag(dag, conf=conf)
        summary = result.xcom("report")
        assert result.state == "success", result.task_states
        assert (
            summary["delta"].startswith("full: the fingerprint store is not usable")
            and why in summary["delta"]
        )
        assert "this run sends every record" in result.log
    assert summary["records_sent"] == 30, summary
    assert stored(store)["last_full_sync"] == summary["read_at"]  # the next run is a delta run again
