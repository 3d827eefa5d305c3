"""when_missing, end to end (dag.test) against both emulators: records whose device or user left Kandji
are flagged in Oomnitza after the grace period, once, never deleted; a record back in Kandji gets the
clear_when_seen values; a partial listing, a failed listing or a dry run flags nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from helpers.harness import KANDJI_TOKEN, days_ago, oomnitza_assets, patch_record

GONE = {"after_days": 7, "set": {"status": "Not in Kandji"}}


def error_log(summary) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(summary["error_log"].removeprefix("file://")).read_text())))


@pytest.fixture
def assets_dag(integration_dag_from):
    def build(**when_missing):
        return integration_dag_from(
            "kandji_devices_and_software",
            software={"enabled": False},
            when_missing={**GONE, **when_missing},
        )

    return build


@pytest.mark.e2e
def test_device_gone_is_flagged_after_grace_once_and_cleared_when_back(
    run_dag, assets_dag, small_fleet, kandji_emulator, oomnitza_emulator
):
    dag = assets_dag(clear_when_seen={"status": "Deployed"})
    first = run_dag(dag)
    assert first.state == "success", first.task_states
    assert first.xcom("report")["when_missing"].startswith("nothing to flag")
    # A record that did not come from this integration (no Kandji id), last touched long ago.
    bystander_id = oomnitza_emulator.post(
        "records/assets",
        [{"serial_number": "NOTKANDJI1", "kandji_connector_sync_time": days_ago(400), "status": "In Stock"}],
    )[0]
    assets = oomnitza_assets(oomnitza_emulator)
    gone_long, gone_recently = small_fleet[0], small_fleet[1]
    for device in (gone_long, gone_recently):
        kandji_emulator.delete(f"devices/{device['device_id']}")
    long_ago = days_ago(10)
    patch_record(
        oomnitza_emulator,
        "assets",
        assets[gone_long["serial_number"]]["equipment_id"],
        {"kandji_connector_sync_time": long_ago},
    )
    patch_record(
        oomnitza_emulator,
        "assets",
        assets[gone_recently["serial_number"]]["equipment_id"],
        {"kandji_connector_sync_time": days_ago(2)},
    )

    second = run_dag(dag)
    summary = second.xcom("report")
    assert second.state == "success", second.task_states
    assert summary["flagged_as_missing"] == 1 and summary["failures"] == 0
    assets = oomnitza_assets(oomnitza_emulator)
    assert assets[gone_long["serial_number"]]["status"] == "Not in Kandji"
    # Flagging says nothing about when it was seen: its Connector Sync Time stays as it was.
    assert assets[gone_long["serial_number"]]["kandji_connector_sync_time"] == long_ago
    assert assets[gone_recently["serial_number"]].get("status") != "Not in Kandji"  # within the grace period
    assert (
        assets["NOTKANDJI1"]["status"] == "In Stock" and assets["NOTKANDJI1"]["equipment_id"] == bystander_id
    )
    assert len(assets) == 31  # nothing deleted
    rows = [r for r in error_log(summary) if r["stage"] == "flagged as missing"]
    assert [(r["kandji_id"], r["sync_key"]) for r in rows] == [
        (gone_long["device_id"], f"serial_number={gone_long['serial_number']!r}")
    ]
    assert "not seen in Kandji for over 7" in rows[0]["reason"] and long_ago in rows[0]["reason"]
    flag_runs = [
        r for r in oomnitza_emulator.get("state")["runs"].values() if r.get("objects", {}).get("updated") == 1
    ]
    assert flag_runs, "the flag went through the connector protocol as its own run"

    oomnitza_emulator.clear_requests()
    third = run_dag(dag)
    summary = third.xcom("report")
    assert third.state == "success"
    assert summary["flagged_as_missing"] == 0 and "1 already flagged" in summary["when_missing"]
    assert (
        len(oomnitza_emulator.requests("^/api/v3/bulk$")) == 1
    )  # the load's one batch of 28 devices; no flag run at all

    kandji_emulator.post(
        "devices", {"device_id": gone_long["device_id"], "serial_number": gone_long["serial_number"]}
    )
    fourth = run_dag(dag)
    summary = fourth.xcom("report")
    assert fourth.state == "success"
    assert summary["back_in_kandji"] == 1 and summary["flagged_as_missing"] == 0
    back = oomnitza_assets(oomnitza_emulator)[gone_long["serial_number"]]
    assert back["status"] == "Deployed" and back["kandji_connector_sync_time"] != long_ago
    assert [r["stage"] for r in error_log(summary)] == ["back in Kandji"]


@pytest.mark.e2e
def test_partial_or_failed_listing_flags_nothing(
    run_dag, assets_dag, small_fleet, kandji_emulator, oomnitza_emulator
):
    dag = assets_dag()
    assert run_dag(dag).state == "success"
    gone = small_fleet[0]
    kandji_emulator.delete(f"devices/{gone['device_id']}")
    ident = oomnitza_assets(oomnitza_emulator)[gone["serial_number"]]["equipment_id"]
    patch_record(oomnitza_emulator, "assets", ident, {"kandji_connector_sync_time": days_ago(30)})

    # Kandji counts 29 devices but lists 27, without an error: a listing that cannot say what is gone.
    kandji_emulator.put("settings", {"listing_hides": 2})
    partial = run_dag(dag)
    summary = partial.xcom("report")
    assert partial.state == "success"
    assert summary["flagged_as_missing"] == 0
    assert summary["when_missing"].startswith(
        "skipped: Kandji says it holds 29 devices but the listing returned 27"
    )
    assert any("nothing flagged as missing" in w for w in summary["warnings"])
    assert "Nothing flagged as missing: Kandji says it holds 29" in partial.log
    assert oomnitza_assets(oomnitza_emulator)[gone["serial_number"]].get("status") != "Not in Kandji"

    # The listing breaks on its second page (a page of 10): the run fails, nothing is flagged.
    kandji_emulator.put("settings", {"listing_hides": 0})
    kandji_emulator.faults(
        scripted=[{"kind": "status", "status": 403, "path": "^/api/v1/devices$", "after": 0, "times": 9}]
    )
    failed = run_dag(dag)
    assert failed.state == "failed"
    assert failed.task_states["extract"] == "failed"
    assert failed.task_states["flag_missing"] == "upstream_failed"
    assert oomnitza_assets(oomnitza_emulator)[gone["serial_number"]].get("status") != "Not in Kandji"


@pytest.mark.e2e
def test_dry_run_lists_candidates_and_sends_nothing(
    run_dag, assets_dag, small_fleet, kandji_emulator, oomnitza_emulator
):
    dag = assets_dag()
    assert run_dag(dag).state == "success"
    gone = small_fleet[:3]
    assets = oomnitza_assets(oomnitza_emulator)
    for device in gone:
        kandji_emulator.delete(f"devices/{device['device_id']}")
        patch_record(
            oomnitza_emulator,
            "assets",
            assets[device["serial_number"]]["equipment_id"],
            {"kandji_connector_sync_time": days_ago(8)},
        )
    # An Oomnitza that does not know `lte`: the candidates are read without it, with the same result.
    oomnitza_emulator.put("settings", {"refuse_filter_ops": ["lte"]})
    oomnitza_emulator.clear_requests()
    result = run_dag(dag, conf={"dry_run": True})
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["would_flag_as_missing"] == 3 and summary["flagged_as_missing"] == 0
    assert summary["when_missing"].startswith("dry run")
    assert any("refused the filter" in w for w in summary["warnings"])
    rows = error_log(summary)
    assert sorted(r["kandji_id"] for r in rows if r["stage"].startswith("would be flagged")) == sorted(
        d["device_id"] for d in gone
    )
    assert not oomnitza_emulator.requests("^/api/v3/bulk"), "a dry run sends nothing"
    assets = oomnitza_assets(oomnitza_emulator)
    assert all(assets[d["serial_number"]].get("status") != "Not in Kandji" for d in gone)


@pytest.mark.e2e
def test_candidates_are_read_with_a_filter_not_the_whole_instance(
    run_dag, assets_dag, small_fleet, kandji_emulator, oomnitza_emulator
):
    dag = assets_dag()
    assert run_dag(dag).state == "success"
    oomnitza_emulator.clear_requests()
    assert run_dag(dag).state == "success"
    reads = oomnitza_emulator.requests("^/api/v3/assets$", method="GET")
    assert len(reads) == 1
    assert "kandji_connector_sync_time lte" in reads[0]["query"]["filter"]


@pytest.mark.e2e
def test_users_gone_from_kandji_are_flagged(
    run_dag, integration_dag_from, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.post(
        "reset", {"devices": 5, "users": 30, "seed": 3, "tokens": [KANDJI_TOKEN], "rate_limit": {}}
    )
    users = kandji_emulator.get("users")
    dag = integration_dag_from(
        "kandji_users",
        preference="create_and_update",
        when_missing={
            "after_days": 3,
            "set": {"kandji_status": "Not in Kandji"},
            "clear_when_seen": {"kandji_status": None},
        },
    )
    assert run_dag(dag).state == "success"
    gone = users[0]
    kandji_emulator.delete(f"users/{gone['id']}")
    stored = {u["email"]: u for u in oomnitza_emulator.get("state")["records"]["users"].values()}
    patch_record(
        oomnitza_emulator,
        "users",
        stored[gone["email"]]["user_id"],
        {"kandji_connector_sync_time": days_ago(4)},
    )
    result = run_dag(dag)
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["flagged_as_missing"] == 1
    stored = {u["email"]: u for u in oomnitza_emulator.get("state")["records"]["users"].values()}
    assert stored[gone["email"]]["kandji_status"] == "Not in Kandji"
    assert sum(1 for u in stored.values() if u.get("kandji_status") == "Not in Kandji") == 1

    kandji_emulator.post("users", {k: v for k, v in gone.items()})
    back = run_dag(dag)
    assert back.xcom("report")["back_in_kandji"] == 1
    stored = {u["email"]: u for u in oomnitza_emulator.get("state")["records"]["users"].values()}
    assert stored[gone["email"]].get("kandji_status") in (None, "")
