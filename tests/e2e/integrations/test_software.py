"""The software frame: what a route's answers become, how a record gets its app list back, and the
frame's trip between tasks in parts."""

from __future__ import annotations

import pytest
import requests
from helpers.harness import KANDJI_TOKEN, oomnitza_assets

from kandji_oomnitza.integrations import software


def apple_app(name, version, path=None):
    return {"app_name": name, "version": version, "path": path}


@pytest.mark.e2e
def test_software_in_many_parts_reaches_every_asset_exactly(
    run_dag, integration_dag_from, kandji_process, kandji_emulator, oomnitza_emulator, monkeypatch
):
    monkeypatch.setattr(software, "ROWS_PER_PART", 2_000)  # dag.test runs the tasks in this process
    kandji_emulator.put("settings", {"export_ready_after_polls": 1})
    dag = integration_dag_from("kandji_devices_and_software", software={"route": "prism_export"})
    result = run_dag(dag)
    assert result.state == "success", result.task_states
    assert result.xcom("extract", key="software")["parts"] > 3
    devices = {d["serial_number"]: d for d in kandji_emulator.get("devices")}
    assets = oomnitza_assets(oomnitza_emulator)
    assert set(assets) == set(devices)
    for serial, asset in assets.items():
        answer = requests.get(
            f"{kandji_process.url}/api/v1/devices/{devices[serial]['device_id']}/apps",
            headers={"Authorization": f"Bearer {KANDJI_TOKEN}"},
            timeout=10,
        ).json()["apps"]
        expected = [
            (
                a.get("app_name") or a.get("display_name") or a.get("name"),
                a.get("version") or a.get("version_name"),
            )
            for a in answer
        ]
        assert [(a["name"], a["version"]) for a in asset["_software"]] == expected, serial
