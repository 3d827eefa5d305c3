"""The assets + software integration DAG, end to end (dag.test) against both emulators over loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from kandji_oomnitza.integration_config import load_integration
from kandji_oomnitza.integration_dag import build_dag

DEFAULT_FILE = ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml"


@pytest.fixture
def integration_dag(tmp_path):
    """Build an integration DAG from the default file with some settings changed."""

    def build(dag_id: str = "kandji_devices_and_software", **changes):
        data = yaml.safe_load(DEFAULT_FILE.read_text())
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / f"{dag_id}.yaml"
        path.write_text(yaml.safe_dump(data))
        return build_dag(dag_id, load_integration(path), path)

    return build


def oomnitza_assets(admin) -> dict[str, dict]:
    state = admin.get("state")
    return {
        a["serial_number"]: a | {"_software": state["software"].get(a["equipment_id"])}
        for a in state["records"]["assets"].values()
    }


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
