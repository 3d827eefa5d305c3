"""The assets + software integration DAG, end to end (dag.test) against both emulators over loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from helpers.harness import ROOT, oomnitza_assets

DEFAULT_FILE = ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml"


@pytest.fixture
def integration_dag(integration_dag_from):
    return lambda **changes: integration_dag_from("kandji_devices_and_software", **changes)


def read_error_log(summary) -> list[dict]:
    path = Path(summary["error_log"].removeprefix("file://"))
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.mark.e2e
def test_first_run_creates_every_asset_with_mapped_values_and_software(
    run_dag, kandji_emulator, oomnitza_emulator
):
    result = run_dag("kandji_devices_and_software")
    assert result.state == "success", result.task_states
    summary = result.xcom("report")
    devices = kandji_emulator.get("devices")
    assets = oomnitza_assets(oomnitza_emulator)
    assert summary["added"] == len(devices) == len(assets) == summary["kandji_records"]
    assert summary["failed"] == summary["rejected_before_load"] == summary["not_loaded"] == 0
    assert summary["integration_user"] == "kandji-integration"  # the Oomnitza connection's login
    for device in devices:
        asset = assets[device["serial_number"]]
        assert asset["device_name"] == device["device_name"]
        assert asset["model"] == device["model"]
        assert asset["kandji_device_id"] == device["device_id"]
        assert asset["kandji_platform"] == device["platform"]
        assert asset["kandji_os_version"] == device["os_version"]
        assert asset.get("kandji_asset_tag") == (device["asset_tag"] or None)
        if isinstance(device["user"], dict):
            assert asset["assigned_to"] == device["user"]["email"]
        else:
            assert "assigned_to" not in asset  # an unassigned device sends no user
        if device["last_check_in"]:
            assert asset["kandji_last_check_in"].endswith("Z") and len(asset["kandji_last_check_in"]) == 20
        else:
            assert "kandji_last_check_in" not in asset
        assert len(asset["_software"]) == device["_app_count"], device["platform"]
    assert summary["software_route"] == "prism"
    oomnitza_url = oomnitza_emulator.url
    assert result.xcom("load", key="_link_OomnitzaRecordsLink") == f"{oomnitza_url}/assets"


@pytest.mark.e2e
def test_second_run_creates_nothing_and_updates_only_what_changed(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator
):
    assert run_dag("kandji_devices_and_software").state == "success"
    before = oomnitza_assets(oomnitza_emulator)
    devices = kandji_emulator.get("devices")
    mac = next(d for d in devices if d["platform"] == "Mac")
    mac_id = mac["device_id"]
    # Rename one device in Kandji (the setname action is how Kandji changes a name).
    from kandji_oomnitza.hooks.kandji import KandjiHook

    KandjiHook().device_action(mac_id, "setname", {"DeviceName": "Renamed in Kandji"})
    result = run_dag(integration_dag(schedule={"cron": None}))  # a new run time, same settings
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["added"] == 0 and summary["failed"] == 0
    after = oomnitza_assets(oomnitza_emulator)
    assert len(after) == len(before)
    for serial, asset in after.items():
        changed = {k for k in asset if asset[k] != before[serial].get(k)}
        expected = {"kandji_connector_sync_time"} | (
            {"device_name"} if serial == mac["serial_number"] else set()
        )
        assert changed <= expected, (serial, changed)
    assert after[mac["serial_number"]]["device_name"] == "Renamed in Kandji"


@pytest.mark.e2e
def test_create_only_and_update_only_preferences(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator
):
    devices = kandji_emulator.get("devices")
    oomnitza_emulator.post(
        "records/assets", [{"serial_number": devices[0]["serial_number"], "device_name": "Old name"}]
    )
    update_only = run_dag(integration_dag(preference="update_only"))
    assert update_only.state == "success"  # every device unknown to Oomnitza is skipped, and reported
    summary = update_only.xcom("report")
    assert summary["updated"] == 1 and summary["added"] == 0 and summary["skipped"] == len(devices) - 1
    assert len(oomnitza_assets(oomnitza_emulator)) == 1
    rows = read_error_log(summary)
    assert len(rows) == len(devices) - 1
    assert all("update only" in r["reason"] for r in rows)

    create_only = run_dag(integration_dag(preference="create_only"))
    summary = create_only.xcom("report")
    assert create_only.state == "success"
    assert summary["added"] == len(devices) - 1 and summary["skipped"] == 1
    assert (
        oomnitza_assets(oomnitza_emulator)[devices[0]["serial_number"]]["device_name"]
        == devices[0]["device_name"]
    )


@pytest.mark.e2e
def test_two_field_sync_key(run_dag, integration_dag, kandji_emulator, oomnitza_emulator):
    devices = kandji_emulator.get("devices")
    # An asset Oomnitza already knows by its Kandji device id, under an old serial number.
    oomnitza_emulator.post(
        "records/assets", [{"serial_number": "OLD-SERIAL", "kandji_device_id": devices[0]["device_id"]}]
    )
    result = run_dag(integration_dag(sync_key=["kandji_device_id", "serial_number"]))
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["updated"] == 1 and summary["added"] == len(devices) - 1
    assets = oomnitza_assets(oomnitza_emulator)
    assert "OLD-SERIAL" not in assets and devices[0]["serial_number"] in assets
    bulk = oomnitza_emulator.requests("^/api/v3/bulk$", "POST")[0]["body"]
    assert bulk["sync_field"] == ["kandji_device_id", "serial_number"]


@pytest.mark.e2e
def test_custom_mappings_with_details_paths_and_converters(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator
):
    data_model = oomnitza_emulator.get("state")["data_model"]
    for name in ("cpu", "notes", "kandji_tags", "kandji_supervised", "operating_system", "manufacturer"):
        data_model["assets"].append(
            {
                "field": name,
                "type": "boolean" if name == "kandji_supervised" else "string",
                "unique": False,
                "searchhelp": [],
            }
        )
    oomnitza_emulator.put("data_model", data_model)
    mappings = yaml.safe_load(DEFAULT_FILE.read_text())["mappings"] | {
        "cpu": {"path": "details.hardware_overview.processor_name", "converter": "upper"},
        "kandji_supervised": {"path": "details.mdm.supervised", "converter": "boolean"},
        "notes": {"path": ["asset_tag", "serial_number"], "converter": "first_non_empty"},
        "kandji_tags": {"path": "tags", "converter": {"name": "join", "separator": "; "}},
        "operating_system": {"template": "{platform} {os_version}"},
        "manufacturer": {"constant": "Apple"},
        "device_name": {"path": "device_name", "converter": "lower"},
    }
    result = run_dag(integration_dag(mappings=mappings))
    assert result.state == "success", result.task_states
    devices = {d["serial_number"]: d for d in kandji_emulator.get("devices")}
    assert len(kandji_emulator.requests("/details$")) == len(
        devices
    )  # details fetched because a mapping needs them
    for serial, asset in oomnitza_assets(oomnitza_emulator).items():
        device = devices[serial]
        assert asset["notes"] == (device["asset_tag"] or device["serial_number"])
        assert asset["operating_system"] == f"{device['platform']} {device['os_version']}"
        assert asset["manufacturer"] == "Apple"
        assert asset["device_name"] == device["device_name"].lower()
        assert asset.get("kandji_tags") == ("; ".join(device["tags"]) or None)
        if device["platform"] == "Mac":
            assert asset["cpu"] == "APPLE M1" and asset["kandji_supervised"] is True


@pytest.mark.e2e
def test_details_are_not_fetched_unless_a_mapping_needs_them(run_dag, kandji_emulator, oomnitza_emulator):
    assert run_dag("kandji_devices_and_software").state == "success"
    assert kandji_emulator.requests("/details$") == []


@pytest.mark.e2e
def test_rejected_records_appear_in_both_error_logs(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.post("devices", {"serial_number": "", "platform": "Mac"})  # no serial number
    kandji_emulator.post("devices", {"serial_number": "TWIN00000001", "platform": "Mac"})
    kandji_emulator.post("devices", {"serial_number": "TWIN00000001", "platform": "iPad"})
    kandji_emulator.post(
        "devices", {"serial_number": "BADDATE00001", "platform": "Mac", "last_check_in": "yesterday-ish"}
    )
    result = run_dag("kandji_devices_and_software")
    assert result.state == "failed"  # default: any record not loaded fails the run, after loading the rest
    assert result.task_states["report"] == "failed" and result.task_states["load"] == "success"
    summary = result.xcom("report", key="summary")
    total = len(kandji_emulator.get("devices"))
    assert summary["rejected_before_load"] == 4 and summary["added"] == total - 4
    rows = read_error_log(summary)
    reasons = "\n".join(r["reason"] for r in rows)
    assert len(rows) == 4
    assert "sync key serial_number is empty" in reasons
    assert reasons.count("duplicate sync key serial_number='TWIN00000001'") == 2
    assert "Last Check-In: date cannot read 'yesterday-ish'" in reasons
    errors = [c["body"] for c in oomnitza_emulator.requests("^/api/v3/bulk$", "POST") if c["body"]["error"]]
    assert sum(len(b["records"]) for b in errors) == 4
    run_log = oomnitza_emulator.get("state")["runs"][summary["portion"]]
    assert run_log["objects"]["failed"] == 4


@pytest.mark.e2e
def test_dry_run_sends_nothing(run_dag, kandji_emulator, oomnitza_emulator):
    result = run_dag("kandji_devices_and_software", conf={"dry_run": True})
    summary = result.xcom("report")
    assert result.state == "success"
    assert summary["dry_run"] is True and summary["would_send"] == len(kandji_emulator.get("devices"))
    assert oomnitza_emulator.requests("^/api/v3/bulk") == []
    assert oomnitza_assets(oomnitza_emulator) == {}
    assert "would be sent" in result.log


@pytest.mark.e2e
@pytest.mark.parametrize("route", ["per_device", "prism", "prism_export"])
def test_every_software_route_loads_the_same_software(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator, route
):
    kandji_emulator.put("settings", {"export_ready_after_polls": 1})
    result = run_dag(integration_dag(software={"route": route}))
    assert result.state == "success", result.task_states
    devices = {d["serial_number"]: d for d in kandji_emulator.get("devices")}
    for serial, asset in oomnitza_assets(oomnitza_emulator).items():
        assert len(asset["_software"]) == devices[serial]["_app_count"]
    per_device_calls = len(kandji_emulator.requests("/devices/.*/apps$"))
    others = sum(1 for d in devices.values() if d["platform"] in ("Windows", "Android"))
    assert per_device_calls == (len(devices) if route == "per_device" else others)


@pytest.mark.e2e
def test_auto_route_uses_the_export_for_large_fleets_and_falls_back(
    run_dag, integration_dag, kandji_emulator, oomnitza_emulator
):
    kandji_emulator.put("settings", {"export_mode": "bad_columns", "export_ready_after_polls": 1})
    result = run_dag(integration_dag(software={"route": "auto", "export_threshold_rows": 10}))
    summary = result.xcom("report")
    assert result.state == "success"
    software = result.xcom("extract", key="stats")["software"]
    assert software["route"] == "prism_export" and "Prism pages used instead" in software["fallbacks"][0]
    assert kandji_emulator.requests("/prism/apps$")  # the fallback paged Prism
    assert summary["software_rows"] == sum(d["_app_count"] for d in kandji_emulator.get("devices"))


@pytest.mark.e2e
def test_token_without_prism_permission_falls_back_to_per_device(run_dag, kandji_emulator, oomnitza_emulator):
    from helpers.harness import KANDJI_TOKEN

    kandji_emulator.put("permissions", {KANDJI_TOKEN: ["prism"]})
    result = run_dag("kandji_devices_and_software")
    assert result.state == "success"
    assert result.xcom("extract", key="stats")["software"]["route"] == "per_device"
    assert len(kandji_emulator.requests("/devices/.*/apps$")) == len(kandji_emulator.get("devices"))


@pytest.mark.e2e
def test_field_check_stops_before_loading(run_dag, integration_dag, kandji_emulator, oomnitza_emulator):
    mappings = yaml.safe_load(DEFAULT_FILE.read_text())["mappings"] | {"purchase_order": {"constant": "PO-1"}}
    result = run_dag(integration_dag(mappings=mappings))
    assert result.state == "failed" and result.task_states["check_oomnitza_fields"] == "failed"
    assert "Oomnitza has no assets field(s) ['purchase_order']" in result.log
    assert oomnitza_emulator.requests("^/api/v3/bulk") == []


OBJECT_STORAGE_RUN = """
import json, sys
from airflow.utils.db import initdb
initdb()
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["kandji_devices_and_software"]
run = dag.test()
print("RESULT " + json.dumps({"state": str(run.state)}))
"""


@pytest.mark.e2e
def test_object_storage_xcom_backend(
    kandji_emulator, oomnitza_emulator, kandji_process, oomnitza_process, tmp_path
):
    """The whole DAG with DataFrames passed through the object-storage XCom backend (a file:// path).

    Airflow picks its XCom backend once per process, so the run happens in a fresh process.
    """
    import json
    import os
    import subprocess
    import sys

    from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN

    store = tmp_path / "xcom"
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'home' / 'airflow.db'}",
        AIRFLOW__CORE__XCOM_BACKEND="airflow.providers.common.io.xcom.backend.XComObjectStorageBackend",
        AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH=f"file://{store}",
        AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD="0",
        AIRFLOW_CONN_KANDJI_DEFAULT=json.dumps(
            {"conn_type": "http", "host": kandji_process.url, "password": KANDJI_TOKEN}
        ),
        AIRFLOW_CONN_OOMNITZA_DEFAULT=json.dumps(
            {"conn_type": "http", "host": oomnitza_process.url, "password": OOMNITZA_TOKEN}
        ),
    )
    (tmp_path / "home").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", OBJECT_STORAGE_RUN, str(ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result_line = next((line for line in out.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert result_line, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads(result_line.removeprefix("RESULT "))["state"] == "success"
    assert len(oomnitza_assets(oomnitza_emulator)) == len(kandji_emulator.get("devices"))
    stored = [p for p in store.rglob("*") if p.is_file()]
    assert len(stored) >= 5, "each task's XCom should have gone to object storage"


@pytest.mark.e2e
def test_connector_sync_time_is_when_kandji_was_read_and_a_retried_load_sends_the_same(
    run_dag, kandji_emulator, oomnitza_emulator, airflow_connections, oomnitza_process
):
    from helpers.harness import OOMNITZA_TOKEN

    # The first load attempt loses the answer of its first batch and gives up (one attempt per request);
    # Airflow's retry sends everything again, under a new portion.
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        password=OOMNITZA_TOKEN,
        extra={"max_attempts": 1, "backoff_seconds": 0.01},
    )
    oomnitza_emulator.faults(scripted=[{"kind": "lost_response", "path": "^/api/v3/bulk$", "times": 1}])
    result = run_dag("kandji_devices_and_software")
    assert result.state == "success" and result.tries["load"] == 2 and result.tries["extract"] == 1
    read_at = result.xcom("extract", key="stats")["read_at"]
    bulks = [c["body"] for c in oomnitza_emulator.requests("^/api/v3/bulk$", "POST")]
    portions = {b["portion"] for b in bulks}
    assert len(portions) == 2  # two attempts
    stamps = {r["kandji_connector_sync_time"] for b in bulks for r in b["records"]}
    assert stamps == {read_at}  # the same time in both attempts: when Kandji was read, not a run date


@pytest.mark.e2e
def test_the_valid_integration_beside_a_broken_file_still_runs(
    tmp_path, monkeypatch, run_dag, kandji_emulator, oomnitza_emulator
):
    folder = tmp_path / "integrations"
    folder.mkdir()
    (folder / "kandji_devices_and_software.yaml").write_text(
        (ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text()
    )
    (folder / "kandji_users.yaml").write_text(
        (ROOT / "include" / "integrations" / "kandji_users.yaml").read_text().replace("sync_key:", "sync_ky:")
    )
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(folder))
    result = run_dag("kandji_devices_and_software")
    assert result.state == "success", result.task_states
    assert result.xcom("report")["added"] == len(kandji_emulator.get("devices"))


@pytest.mark.e2e
def test_kandji_and_oomnitza_connection_types_load_what_http_connections_load(
    run_dag, kandji_emulator, oomnitza_emulator, airflow_connections, kandji_process, oomnitza_process
):
    from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN

    landed = {}
    for kind in ("http", "own types"):
        oomnitza_emulator.post("reset", {"tokens": [OOMNITZA_TOKEN], "settings": {"polls_until_finished": 1}})
        airflow_connections(
            "kandji_default",
            conn_type="http" if kind == "http" else "kandji",
            host=kandji_process.url,
            password=KANDJI_TOKEN,
        )
        airflow_connections(
            "oomnitza_default",
            conn_type="http" if kind == "http" else "oomnitza",
            host=oomnitza_process.url,
            password=OOMNITZA_TOKEN,
        )
        result = run_dag("kandji_devices_and_software")
        assert result.state == "success", result.task_states
        landed[kind] = {
            serial: (
                {k: v for k, v in asset.items() if k not in ("equipment_id", "kandji_connector_sync_time")}
            )
            for serial, asset in oomnitza_assets(oomnitza_emulator).items()
        }
    assert landed["http"] == landed["own types"] and len(landed["http"]) == len(
        kandji_emulator.get("devices")
    )
