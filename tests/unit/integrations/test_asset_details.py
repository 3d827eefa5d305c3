"""integrations/asset_details.py: Get Asset Details' mapping comes from a setting, and a missing or
unusable file is an error naming the setting and the fix."""

from __future__ import annotations

import shutil

import pytest
from helpers.harness import ROOT

from kandji_oomnitza.exceptions import IntegrationFileError
from kandji_oomnitza.integrations.asset_details import SETTING, AssetRecord, asset_details_mapping

SHIPPED = ROOT / "include" / "integrations"


def test_the_mapping_is_the_shipped_devices_file_by_default_and_the_setting_can_name_another(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(SETTING, raising=False)
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(SHIPPED))
    assert asset_details_mapping().name == "Kandji Devices and Software"
    shutil.copy(SHIPPED / "kandji_devices_and_software.yaml", tmp_path / "my_assets.yaml")
    monkeypatch.setenv(SETTING, str(tmp_path / "my_assets.yaml"))
    assert asset_details_mapping().type == "assets"


@pytest.mark.parametrize(
    ("name", "problem"), [("nope.yaml", "does not exist"), ("kandji_users.yaml", "not an assets integration")]
)
def test_a_missing_or_unusable_mapping_names_the_setting(monkeypatch, name, problem):
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(SHIPPED))
    monkeypatch.setenv(SETTING, name)
    with pytest.raises(IntegrationFileError, match=problem) as caught:
        asset_details_mapping()
    assert SETTING in str(caught.value)
    lazy = AssetRecord()  # a workflow's: read on first use, with the same error
    with pytest.raises(IntegrationFileError, match=problem):
        lazy({"device_id": "d"})


def test_a_device_becomes_the_record_the_integration_would_send(monkeypatch):
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(SHIPPED))
    monkeypatch.delenv(SETTING, raising=False)
    record = AssetRecord()(
        {"device_id": "d-1", "serial_number": "C02X", "device_name": "Mac", "platform": "Mac", "details": {}}
    )
    assert record["serial_number"] == "C02X" and record["kandji_device_id"] == "d-1"
    with pytest.raises(ValueError, match="serial_number"):
        AssetRecord()(
            {"device_id": "d-2", "serial_number": "", "device_name": "Mac", "platform": "Mac", "details": {}}
        )
