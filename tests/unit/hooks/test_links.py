"""hooks/links.py: the task buttons, built from what the run set on its operator and the connections'
addresses (never a token)."""

from __future__ import annotations

from types import SimpleNamespace

from kandji_oomnitza.hooks.links import KandjiDeviceLink, OomnitzaAssetLink, OomnitzaRecordsLink


def test_links_point_at_the_web_apps_and_are_empty_before_the_run_found_a_device(airflow_connections):
    airflow_connections("kandji_default", conn_type="kandji", password="t", host="https://acme.api.kandji.io")
    airflow_connections(
        "oomnitza_default", conn_type="oomnitza", password="t", host="https://acme.oomnitza.com"
    )
    ran = SimpleNamespace(
        kandji_conn_id="kandji_default", oomnitza_conn_id="oomnitza_default", device_id="d-1",
        serial_number="C02X", data_type="assets",
    )  # fmt: skip
    assert KandjiDeviceLink().get_link(ran, ti_key=None) == "https://acme.kandji.io/devices/d-1"
    asset = OomnitzaAssetLink().get_link(ran, ti_key=None)
    assert asset.startswith("https://acme.oomnitza.com/assets?filter=") and "C02X" in asset
    assert OomnitzaRecordsLink().get_link(ran, ti_key=None) == "https://acme.oomnitza.com/assets"
    before = SimpleNamespace(kandji_conn_id="kandji_default", oomnitza_conn_id="oomnitza_default")
    assert (
        KandjiDeviceLink().get_link(before, ti_key=None)
        == ""
        == OomnitzaAssetLink().get_link(before, ti_key=None)
    )
