"""Every device-action preset DAG, end to end (dag.test) against the emulators over loopback."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import ParamValidationError
from helpers.harness import AIRFLOW_HOME, SEEN_PINS

from kandji_oomnitza.presets.registry import PRESETS


def device(admin, platform: str, **where) -> dict:
    return next(
        d
        for d in admin.get("devices")
        if d["platform"] == platform and all(d.get(k) == v for k, v in where.items())
    )


def action_calls(admin) -> list[dict]:
    return admin.requests("/action/")


def test_registry_matches_the_design_contract(dag_bag):
    assert {p.dag_id for p in PRESETS} == {
        "kandji_preset_clear_passcode",
        "kandji_preset_device_restart",
        "kandji_preset_device_set_name",
        "kandji_preset_device_shutdown",
        "kandji_preset_erase_device",
        "kandji_preset_get_asset_details",
        "kandji_preset_lock_device",
        "kandji_preset_unlock_account",
    }
    for preset in PRESETS:
        dag = dag_bag.dags[preset.dag_id]
        assert dag.timetable is None or type(dag.timetable).__name__ == "NullTimetable"
        assert dag.params.get_param("serial_number").schema["pattern"] == r"^\s*[A-Za-z0-9]{4,32}\s*$"
        for name in ("serial_number", *preset.params):
            assert dag.params.get_param(name).schema.get("title") and dag.params.get_param(name).description
        assert dag.get_task("run_action").retries == 0
    erase = dag_bag.dags["kandji_preset_erase_device"].params
    assert {"pin", "preserve_data_plan", "disallow_proximity_setup", "confirm_serial_number"} <= set(erase)
    assert {"message", "phone_number"} <= set(dag_bag.dags["kandji_preset_lock_device"].params)
    assert {"rebuild_kernel_cache", "notify_user"} <= set(dag_bag.dags["kandji_preset_device_restart"].params)
    assert "device_name" in dag_bag.dags["kandji_preset_device_set_name"].params
    assert "username" in dag_bag.dags["kandji_preset_unlock_account"].params


CASES = [
    ("clear_passcode", "iPhone", {}, "clearpasscode", None),
    (
        "device_restart",
        "Mac",
        {"rebuild_kernel_cache": True},
        "restart",
        {"RebuildKernelCache": True, "NotifyUser": False},
    ),
    (
        "device_set_name",
        "iPad",
        {"device_name": "Front Desk iPad"},
        "setname",
        {"DeviceName": "Front Desk iPad"},
    ),
    ("device_shutdown", "Mac", {}, "shutdown", None),
    (
        "erase_device",
        "Mac",
        {"pin": "123456", "preserve_data_plan": False},
        "erase",
        {
            "PIN": "123456",
            "PreserveDataPlan": False,
            "DisallowProximitySetup": False,
            "ReturnToService": {"Enabled": False},
        },
    ),
    (
        "lock_device",
        "iPhone",
        {"message": "Lost: call IT", "phone_number": "+1 555 0100"},
        "lock",
        {"Message": "Lost: call IT", "PhoneNumber": "+1 555 0100"},
    ),
    ("unlock_account", "Mac", {"username": "jdoe"}, "unlockaccount", {"UserName": "jdoe"}),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("key", "platform", "inputs", "action", "body"), CASES, ids=[c[0] for c in CASES])
def test_each_preset_sends_the_right_action_and_body(
    run_dag, kandji_emulator, oomnitza_emulator, key, platform, inputs, action, body
):
    target = device(kandji_emulator, platform)
    conf = {"serial_number": target["serial_number"], **inputs}
    if key == "erase_device":
        conf["confirm_serial_number"] = target["serial_number"]
    result = run_dag(f"kandji_preset_{key}", conf=conf)
    assert result.state == "success", result.task_states
    (call,) = action_calls(kandji_emulator)
    assert call["path"] == f"/api/v1/devices/{target['device_id']}/action/{action}"
    assert call["body"] == body
    summary = result.xcom("run_action")
    assert summary["result"] == "sent" and summary["device_id"] == target["device_id"]
    assert summary["delivery"] in ("pending", "completed")
    assert result.xcom("run_action", key="device_id") == target["device_id"]
    kandji_link = result.xcom("run_action", key="_link_KandjiDeviceLink")
    assert kandji_link.endswith(f"/devices/{target['device_id']}")


@pytest.mark.e2e
def test_serial_resolution_is_exact(run_dag, kandji_emulator, oomnitza_emulator):
    kandji_emulator.post("devices", {"serial_number": "C02EXACT1234", "platform": "Mac"})
    result = run_dag("kandji_preset_device_restart", conf={"serial_number": "C02EXACT123"})
    assert result.state == "failed"
    assert (
        "No Kandji device has serial number 'C02EXACT123'" in result.log
        and "1 device has a serial number containing it: C02EXACT1234" in result.log
    )
    assert action_calls(kandji_emulator) == []


@pytest.mark.e2e
def test_two_devices_with_one_serial_are_refused(run_dag, kandji_emulator, oomnitza_emulator):
    kandji_emulator.post("devices", {"serial_number": "TWINSERIAL01", "platform": "Mac"})
    kandji_emulator.post("devices", {"serial_number": "TWINSERIAL01", "platform": "Mac"})
    result = run_dag("kandji_preset_device_shutdown", conf={"serial_number": "TWINSERIAL01"})
    assert result.state == "failed" and "2 Kandji devices have serial number 'TWINSERIAL01'" in result.log
    assert action_calls(kandji_emulator) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("key", "platform"),
    [("clear_passcode", "Mac"), ("unlock_account", "iPhone"), ("device_shutdown", "AppleTV")],
)
def test_platform_checks_stop_before_sending(run_dag, kandji_emulator, oomnitza_emulator, key, platform):
    target = device(kandji_emulator, platform)
    conf = {
        "serial_number": target["serial_number"],
        **({"username": "jdoe"} if key == "unlock_account" else {}),
    }
    result = run_dag(f"kandji_preset_{key}", conf=conf)
    assert result.state == "failed"
    assert f"is a {platform}. Nothing was sent." in result.log
    assert action_calls(kandji_emulator) == []


@pytest.mark.e2e
def test_erase_needs_the_serial_number_twice(run_dag, kandji_emulator, oomnitza_emulator):
    target = device(kandji_emulator, "Mac")
    result = run_dag(
        "kandji_preset_erase_device",
        conf={"serial_number": target["serial_number"], "confirm_serial_number": "C02SOMEOTHER"},
    )
    assert result.state == "failed"
    assert "Nothing was erased: type the serial number again in Confirm serial number" in result.log
    assert kandji_emulator.requests("/api/v1/") == []  # not even a lookup
    # Left empty, the confirmation gets the same plain sentence (not a JSON-schema dump at trigger time).
    missing = run_dag("kandji_preset_erase_device", conf={"serial_number": target["serial_number"]})
    assert missing.state == "failed" and "Nothing was erased" in missing.log
    assert kandji_emulator.requests("/api/v1/") == []


@pytest.mark.e2e
def test_already_locked_is_a_warning_but_command_running_is_a_failure(
    run_dag, kandji_emulator, oomnitza_emulator
):
    target = device(kandji_emulator, "iPhone")
    assert (
        run_dag("kandji_preset_lock_device", conf={"serial_number": target["serial_number"]}).state
        == "success"
    )
    again = run_dag("kandji_preset_lock_device", conf={"serial_number": target["serial_number"]})
    assert again.state == "success" and again.xcom("run_action")["result"] == "already done"
    assert "This device is already locked." in again.log
    mac = device(kandji_emulator, "Mac")
    assert (
        run_dag("kandji_preset_device_restart", conf={"serial_number": mac["serial_number"]}).state
        == "success"
    )
    # Kandji now takes a minute over a command: the restart just sent is still running.
    kandji_emulator.put("settings", {"command_completion_seconds": 60})
    running = run_dag("kandji_preset_device_restart", conf={"serial_number": mac["serial_number"]})
    assert running.state == "failed" and "Command already running" in running.log


@pytest.mark.e2e
@pytest.mark.parametrize(
    "fault",
    [{"kind": "status", "status": 502}, {"kind": "timeout", "seconds": 40}, {"kind": "lost_response"}],
)
def test_a_sent_action_is_never_resent(
    run_dag, kandji_emulator, oomnitza_emulator, airflow_connections, kandji_process, fault
):
    from helpers.harness import KANDJI_TOKEN

    airflow_connections(
        "kandji_default",
        host=kandji_process.url,
        password=KANDJI_TOKEN,
        extra={"timeout": 2, "backoff_seconds": 0.01},
    )
    target = device(kandji_emulator, "Mac")
    kandji_emulator.faults(scripted=[{**fault, "path": "/action/", "times": 5}])
    result = run_dag("kandji_preset_device_restart", conf={"serial_number": target["serial_number"]})
    assert result.state == "failed"
    assert len(action_calls(kandji_emulator)) == 1
    assert result.task_states["run_action"] == "failed"


@pytest.mark.e2e
def test_lock_pin_never_reaches_logs_or_xcom(run_dag, kandji_emulator, oomnitza_emulator):
    mac = device(kandji_emulator, "Mac")
    result = run_dag(
        "kandji_preset_lock_device", conf={"serial_number": mac["serial_number"], "message": "Returned to IT"}
    )
    assert result.state == "success"
    pin = device(kandji_emulator, "Mac", device_id=mac["device_id"])["_unlock_pin"]
    assert pin and len(pin) == 6
    SEEN_PINS.append(pin)  # the session-wide scan looks for it too
    assert pin not in result.log
    assert pin not in json.dumps({str(k): v for k, v in result.xcoms.items()}, default=str)
    assert "Device Secrets" in result.log
    for path in AIRFLOW_HOME.rglob("*.log"):
        assert pin not in path.read_text(errors="replace"), path
    assert result.xcom("run_action")["unlock_pin"] == "kept in Kandji's device secrets"


@pytest.mark.e2e
def test_get_asset_details_updates_the_asset_in_oomnitza(run_dag, kandji_emulator, oomnitza_emulator):
    mac = device(kandji_emulator, "Mac")
    oomnitza_emulator.post(
        "records/assets", [{"serial_number": mac["serial_number"], "device_name": "stale"}]
    )
    result = run_dag("kandji_preset_get_asset_details", conf={"serial_number": mac["serial_number"]})
    assert result.state == "success", result.task_states
    summary = result.xcom("run_action")
    assert summary["device_name"] == mac["device_name"] and summary["oomnitza_counts"] == {"updated": 1}
    (asset,) = oomnitza_emulator.get("state")["records"]["assets"].values()
    assert asset["device_name"] == mac["device_name"] and asset["kandji_device_id"] == mac["device_id"]
    bulk = oomnitza_emulator.requests("^/api/v3/bulk$", "POST")[0]["body"]
    assert bulk["update_only"] is True and bulk["sync_field"] == ["serial_number"]
    assert len(kandji_emulator.requests("/details$")) == 1
    assert action_calls(kandji_emulator) == []


@pytest.mark.e2e
def test_get_asset_details_for_an_asset_oomnitza_lacks(run_dag, kandji_emulator, oomnitza_emulator):
    mac = device(kandji_emulator, "Mac")
    result = run_dag("kandji_preset_get_asset_details", conf={"serial_number": mac["serial_number"]})
    assert result.state == "failed"
    assert "only updates existing assets" in result.log
    assert oomnitza_emulator.get("state")["records"]["assets"] == {}


HOSTILE = [
    "../../etc/passwd",
    "C02/ABC",
    "https://evil.example/x",
    "C02ABC?x=1",
    "A" * 500,
    "C02\nABC",
    "C02\x00ABC",
    "C02ÄBC123",
    "",
    "C02 ABC",
    "${jndi:x}",
]


@pytest.mark.e2e
@pytest.mark.parametrize("serial", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_serials_are_rejected_before_any_call(run_dag, kandji_emulator, oomnitza_emulator, serial):
    with pytest.raises(ParamValidationError, match="serial_number"):
        run_dag("kandji_preset_device_restart", conf={"serial_number": serial})
    assert kandji_emulator.requests("/api/") == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("key", "conf", "field"),
    [
        ("device_set_name", {"device_name": "a/b"}, "device_name"),
        ("device_set_name", {"device_name": "x" * 64}, "device_name"),
        ("lock_device", {"phone_number": "call me maybe"}, "phone_number"),
        ("lock_device", {"message": "line\nbreak"}, "message"),
        ("unlock_account", {"username": "root; rm -rf /"}, "username"),
        ("erase_device", {"pin": "12ab56", "confirm_serial_number": "C02ABC12345"}, "pin"),
    ],
)
def test_invalid_action_inputs_name_the_field(run_dag, kandji_emulator, oomnitza_emulator, key, conf, field):
    with pytest.raises(ParamValidationError, match=field):
        run_dag(f"kandji_preset_{key}", conf={"serial_number": "C02ABC12345", **conf})
    assert kandji_emulator.requests("/api/") == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "fault",
    [{"kind": "status", "status": 500, "times": 50}, {"kind": "status", "status": 404, "times": 50}],
    ids=["outage", "not-found"],
)
def test_an_accepted_action_is_not_failed_by_an_unreadable_command_list(
    run_dag, kandji_emulator, oomnitza_emulator, airflow_connections, kandji_process, fault
):
    from helpers.harness import KANDJI_TOKEN

    airflow_connections(
        "kandji_default",
        host=kandji_process.url,
        password=KANDJI_TOKEN,
        extra={"backoff_seconds": 0.01, "max_attempts": 2},
    )
    target = device(kandji_emulator, "iPhone")
    kandji_emulator.faults(scripted=[{**fault, "path": "/commands$"}])
    result = run_dag("kandji_preset_device_restart", conf={"serial_number": target["serial_number"]})
    assert result.state == "success", result.task_states
    assert result.xcom("run_action")["delivery"].startswith("unknown (")
    assert "do not send it again" in result.log
    assert len(action_calls(kandji_emulator)) == 1
