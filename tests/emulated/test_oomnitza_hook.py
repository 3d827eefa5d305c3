"""The Oomnitza hook against the Oomnitza emulator, over real HTTP on loopback."""

from __future__ import annotations

import json

import pytest
import requests
from helpers.harness import OOMNITZA_TOKEN

from dev.emulators.client import EmulatorProcess
from kandji_oomnitza.exceptions import ConfigurationError
from kandji_oomnitza.hooks.errors import ApiError, TransportError
from kandji_oomnitza.hooks.oomnitza import UNCONFIRMED, OomnitzaHook, Preference, RunOutcomeTimeout
from kandji_oomnitza.hooks.retry import RetryMode


def hook(**kwargs) -> OomnitzaHook:
    return OomnitzaHook(**kwargs)


# Oomnitza REST calls only the tests make (the product loads through the connector protocol).
def create_record(h: OomnitzaHook, kind: str, record: dict) -> dict:
    """POST is not idempotent: a resend after a timeout could create a second record, so it is sent
    again only when it certainly never left."""
    return h.request(
        "POST", f"api/v3/{kind}", json_body=record, retry=RetryMode.UNSENT_ONLY, decode=lambda r: r.json()
    )


def get_record(h: OomnitzaHook, kind: str, ident: str) -> dict:
    return h.get_json(f"api/v3/{kind}/{ident}")


def asset(serial: str, **fields) -> dict:
    return {"serial_number": serial, "device_name": f"Mac {serial}", "model": "MacBook Air", **fields}


def load(
    records,
    *,
    preference=Preference.CREATE_AND_UPDATE,
    sync_field=("serial_number",),
    data_type="assets",
    rejected=(),
    **kw,
):
    h = hook()
    run = h.start_run(data_type=data_type, sync_field=sync_field, preference=preference, **kw)
    run.add_many(records)
    run.reject(rejected)
    finished = run.finish(poll_seconds=0.01)
    assert run.failure is None and finished.outcome is not None, (run.failure, finished)
    return run, finished.outcome


# -- connection -----------------------------------------------------------------------------------
def test_token_goes_in_authorization2_only(oomnitza_emulator):
    load([asset("S1")])
    calls = oomnitza_emulator.requests("/api/v3/")
    assert calls and all(c["auth_scheme"] == "raw" and c["token_ok"] for c in calls)
    assert not any(c["basic_auth"] for c in calls)  # the connection has a login, yet no Basic auth
    assert not any("Authorization" in c["headers"] or "Authorization2" in c["headers"] for c in calls)
    assert OOMNITZA_TOKEN not in json.dumps(oomnitza_emulator.get("requests"))


def test_wrong_token_names_the_connection_and_the_fix(
    oomnitza_emulator, airflow_connections, oomnitza_process
):
    airflow_connections("oomnitza_default", host=oomnitza_process.url, password="nope")
    with pytest.raises(ApiError) as excinfo:
        hook().field_metadata("assets")
    assert excinfo.value.status == 401
    assert "oomnitza_default" in str(excinfo.value) and "API tokens" in str(excinfo.value)


@pytest.mark.parametrize("host", ["", "ftp://acme.oomnitza.com"])
def test_bad_host_is_a_configuration_error(airflow_connections, host):
    airflow_connections("oomnitza_default", host=host, password="t")
    with pytest.raises(ConfigurationError, match=r"Connection 'oomnitza_default'.*host"):
        hook().root_url()


def test_integration_user_comes_from_login(oomnitza_emulator):
    assert hook().integration_user == "kandji-integration"


# -- ingestion ------------------------------------------------------------------------------------
def test_bulk_payload_follows_the_connector_protocol(oomnitza_emulator):
    run, outcome = load([asset(f"S{i}") for i in range(250)], batch_size=100)
    bulk = oomnitza_emulator.requests("^/api/v3/bulk$", "POST")
    assert [len(c["body"]["records"]) for c in bulk] == [100, 100, 50]
    body = bulk[0]["body"]
    assert body["sync_field"] == ["serial_number"] and body["data_type"] == "assets"
    assert body["insert_only"] is False and body["update_only"] is False
    assert body["portion"] == run.portion and body["connector_name"] == "kandji-oomnitza-airflow"
    assert body["error"] is None and body["test_run"] is False and "connector_version" in body
    assert len(oomnitza_emulator.requests(f"/api/v3/bulk/{run.portion}/finalize", "POST")) == 1
    assert outcome.counts == {"added": 250, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    assert outcome.status == "Finished"


def test_second_run_updates_only_what_changed(oomnitza_emulator):
    load([asset("S1"), asset("S2"), asset("S3")])
    _, outcome = load([asset("S1"), asset("S2", model="MacBook Pro"), asset("S4")])
    assert outcome.counts == {"added": 1, "updated": 1, "unchanged": 1, "skipped": 0, "failed": 0}
    assets = list(hook().iter_records("assets"))
    assert len(assets) == 4
    assert next(a for a in assets if a["serial_number"] == "S2")["model"] == "MacBook Pro"


def test_create_only_and_update_only(oomnitza_emulator):
    load([asset("S1")])
    _, create_only = load([asset("S1", model="X"), asset("S2")], preference=Preference.CREATE_ONLY)
    assert create_only.counts["added"] == 1 and create_only.counts["skipped"] == 1
    assert "create only" in create_only.messages["skipped"][0]
    _, update_only = load([asset("S1", model="Y"), asset("S9")], preference=Preference.UPDATE_ONLY)
    assert update_only.counts["updated"] == 1 and update_only.counts["skipped"] == 1
    assert "update only" in update_only.messages["skipped"][0]
    body = oomnitza_emulator.requests("^/api/v3/bulk$", "POST")[-1]["body"]
    assert body["update_only"] is True and body["insert_only"] is False
    assert {a["serial_number"] for a in hook().iter_records("assets")} == {"S1", "S2"}


def test_multi_field_sync_key_in_priority_order(oomnitza_emulator):
    load([asset("S1", kandji_device_id="dev-1")], sync_field=("kandji_device_id", "serial_number"))
    # Same device, serial re-keyed (a logic board swap): the primary key still finds it.
    _, outcome = load(
        [asset("S1-NEW", kandji_device_id="dev-1")], sync_field=("kandji_device_id", "serial_number")
    )
    assert outcome.counts["updated"] == 1 and outcome.counts["added"] == 0
    # No device id: the secondary key (serial) matches.
    _, outcome = load([asset("S1-NEW", model="M2")], sync_field=("kandji_device_id", "serial_number"))
    assert outcome.counts["updated"] == 1
    assert len(list(hook().iter_records("assets"))) == 1


def test_per_record_failures_and_their_messages(oomnitza_emulator):
    records = [
        asset("S1"),
        asset(""),  # empty sync key
        asset("S1", model="Other"),  # another record with the same sync key in this run
        asset("S3", status="Teleported"),  # not in the dropdown
        asset("S4", kandji_last_check_in="yesterday"),  # not a date
        asset("S5", no_such_field="x"),
    ]
    _, outcome = load(records)
    assert (outcome.counts["added"], outcome.counts["failed"]) == (1, 5), outcome.messages
    text = "\n".join(outcome.messages["failed"])
    for expected in (
        "Sync key value is empty",
        "Duplicate sync key",
        "dropdown",
        "expects a date",
        "Unknown field 'no_such_field'",
    ):
        assert expected in text
    assert outcome.status == "Completed with errors"


def test_rejected_records_are_sent_with_their_reason(oomnitza_emulator):
    rejected = [({"serial_number": "", "device_name": "x"}, "Serial Number is empty"),
                ({"serial_number": "S7"}, "Serial Number is empty"),
                ({"serial_number": "S8"}, "Converter 'date' failed on Last Check-In")]  # fmt: skip
    run, outcome = load([asset("S1")], rejected=rejected)
    assert outcome.counts["failed"] == 3 and outcome.counts["added"] == 1
    errors = [
        c["body"]["error"] for c in oomnitza_emulator.requests("^/api/v3/bulk$", "POST") if c["body"]["error"]
    ]
    assert sorted(errors) == ["Converter 'date' failed on Last Check-In", "Serial Number is empty"]
    assert run.rejected_sent == 3


def test_software_payload_links_apps_to_the_asset(oomnitza_emulator):
    apps = [
        {"name": "Slack", "version": "4.1", "path": "/Applications/Slack.app"},
        {"name": "Zoom", "version": "6", "path": None},
    ]
    load([asset("S1", APPLICATIONS=apps)])
    (record,) = hook().iter_records("assets", filter_expr="serial_number eq 'S1'")
    software = hook().get_json(f"api/v3/assets/{record['equipment_id']}/software")
    assert [(s["software_name"], s["version"]) for s in software] == [("Slack", "4.1"), ("Zoom", "6")]
    _, outcome = load([asset("S1", APPLICATIONS=apps[:1])])
    assert outcome.counts["updated"] == 1  # a removed app is a change


def test_saas_payload_marks_the_user(oomnitza_emulator):
    user = {
        "email": "a@example.com",
        "full_name": "A",
        "kandji_user_is_archived": False,
        "SAAS": [{"name": "Kandji", "status": "active"}],
    }
    _, outcome = load([user], data_type="users", sync_field=("email",))
    assert outcome.counts["added"] == 1
    state = oomnitza_emulator.get("state")
    (saas,) = state["saas"].values()
    assert saas == [{"name": "Kandji", "status": "active"}]


def test_test_run_saves_nothing(oomnitza_emulator):
    _, outcome = load([asset("S1")], test_run=True)
    assert outcome.raw["test_run"] is True and outcome.raw["test_run_payload"]
    assert list(hook().iter_records("assets")) == []


def test_outcome_waits_while_processing_and_times_out(oomnitza_emulator):
    oomnitza_emulator.put("settings", {"polls_until_finished": 3})
    run, _ = load([asset("S1")])
    assert len(oomnitza_emulator.requests(f"connector_run_logs/connectors/{run.portion}")) == 4
    oomnitza_emulator.put("settings", {"polls_until_finished": 1000})
    h = hook()
    run = h.start_run(data_type="assets", sync_field=["serial_number"])
    run.add(asset("S2"))
    with pytest.raises(RunOutcomeTimeout, match="still reports run"):
        run.flush() or h.finalize(run.portion) or h.wait_for_outcome(
            run.portion, timeout_seconds=0.2, poll_seconds=0.05
        )


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 429, "retry_after": 0.05},
        {"kind": "reset"},
        {"kind": "timeout", "seconds": 1.5},
        {"kind": "lost_response"},
    ],
    ids=["503", "429", "reset", "timeout", "lost_response"],
)
def test_bulk_batches_survive_faults_without_duplicates(oomnitza_emulator, fault):
    oomnitza_emulator.faults(
        scripted=[{**fault, "path": "^/api/v3/bulk$", "method": "POST", "times": 2, "after": 1}]
    )
    h = hook(timeout=0.5)
    run = h.start_run(data_type="assets", sync_field=["serial_number"])
    run.add_many(asset(f"S{i}") for i in range(300))
    outcome = run.finish(poll_seconds=0.01).outcome
    assert run.failure is None and h.retries == 2
    serials = [a["serial_number"] for a in hook().iter_records("assets", page_size=50)]
    assert len(serials) == len(set(serials)) == 300
    assert outcome.counts["failed"] == 0 and outcome.counts["added"] == 300
    resent = (
        100 if fault["kind"] == "lost_response" else 0
    )  # the batches that arrived before the answer was lost
    assert outcome.counts["unchanged"] == 2 * resent


def test_bulk_retries_are_bounded(oomnitza_emulator):
    oomnitza_emulator.faults(
        scripted=[
            {
                "kind": "status",
                "status": 500,
                "body": {"errors": ["boom"]},
                "path": "^/api/v3/bulk$",
                "times": 9,
            }
        ]
    )
    h = hook(max_attempts=3)
    run = h.start_run(data_type="assets", sync_field=["serial_number"])
    run.add(asset("S1"))
    run.add(asset("S2"))
    run.flush()
    assert isinstance(run.failure, ApiError) and "HTTP 500" in str(run.failure) and "boom" in str(run.failure)
    assert len(oomnitza_emulator.requests("^/api/v3/bulk$")) == 3
    (batch,) = run.batches
    assert batch.state == UNCONFIRMED and batch.positions == [0, 1]  # a 500 may have stored some of it
    run.add(asset("S3"))  # a stopped run sends nothing more
    run.flush()
    assert len(oomnitza_emulator.requests("^/api/v3/bulk$")) == 3 and len(run.batches) == 1


# -- REST -----------------------------------------------------------------------------------------
def test_rest_list_get_create_update_and_meta(oomnitza_emulator):
    h = hook()
    created = create_record(h, "assets", {"serial_number": "R1", "model": "Mac"})
    ident = created["equipment_id"]
    assert len(ident) == 32
    h.update_record("assets", ident, {"model": "Mac Pro"})
    assert get_record(h, "assets", ident)["model"] == "Mac Pro"
    (patch,) = oomnitza_emulator.requests(f"/api/v3/assets/{ident}", "PATCH")
    assert patch["body"] == {"model": "Mac Pro"}
    for i in range(230):
        create_record(h, "assets", {"serial_number": f"R{i + 2}"})
    everything = list(h.iter_records("assets", page_size=100, fields=["serial_number"]))
    assert len(everything) == 231 and set(everything[0]) == {"serial_number"}
    skips = [c["query"]["skip"] for c in oomnitza_emulator.requests("^/api/v3/assets$", "GET")]
    assert skips == ["0", "100", "200"]
    meta = h.field_metadata("assets")
    assert meta["serial_number"]["unique"] is True and meta["kandji_last_check_in"]["type"] == "date"
    users = h.field_metadata("users")
    assert "kandji_user_is_archived" in users


def test_rest_errors_are_clear(oomnitza_emulator):
    h = hook()
    with pytest.raises(ApiError, match="Not found"):
        get_record(h, "assets", "0" * 32)
    create_record(h, "assets", {"serial_number": "U1"})
    with pytest.raises(ApiError, match="must be unique"):
        create_record(h, "assets", {"serial_number": "U1"})
    with pytest.raises(ValueError):
        list(h.iter_records("computers"))


def test_create_is_not_resent_after_a_timeout(oomnitza_emulator):
    oomnitza_emulator.faults(
        scripted=[{"kind": "timeout", "seconds": 1.0, "path": "^/api/v3/assets$", "method": "POST"}]
    )
    with pytest.raises(TransportError, match=r"no answer within 0\.3s") as excinfo:
        create_record(hook(timeout=0.3), "assets", {"serial_number": "T1"})
    assert not excinfo.value.certainly_unsent
    assert len(oomnitza_emulator.requests("^/api/v3/assets$", "POST")) == 1


def test_state_persists_across_restarts(tmp_path):
    state = tmp_path / "state.json"
    first = EmulatorProcess("dev.emulators.oomnitza", "--token", "t", "--state-file", str(state))
    try:
        requests.post(
            f"{first.url}/api/v3/assets",
            json={"serial_number": "P1"},
            headers={"Authorization2": "t"},
            timeout=5,
        ).raise_for_status()
    finally:
        first.stop()
    second = EmulatorProcess("dev.emulators.oomnitza", "--token", "t", "--state-file", str(state))
    try:
        listed = requests.get(
            f"{second.url}/api/v3/assets", headers={"Authorization2": "t"}, timeout=5
        ).json()
        assert [a["serial_number"] for a in listed] == ["P1"]
    finally:
        second.stop()
