"""presets/registry.py: the eight presets, their inputs as typed trigger-form params, and the platform
check that runs before anything is sent."""

from __future__ import annotations

import pytest

from kandji_oomnitza.presets.registry import CONNECTION_PARAMS, PRESETS, connection_param

BY_KEY = {p.key: p for p in PRESETS}


def test_the_eight_presets_and_their_dag_ids():
    assert sorted(BY_KEY) == [
        "clear_passcode", "device_restart", "device_set_name", "device_shutdown", "erase_device",
        "get_asset_details", "lock_device", "unlock_account",
    ]  # fmt: skip
    assert BY_KEY["lock_device"].dag_id == "kandji_preset_lock_device"
    assert BY_KEY["get_asset_details"].services == ("kandji", "oomnitza")
    assert BY_KEY["lock_device"].services == ("kandji",)


def test_a_preset_refuses_a_device_of_another_platform_before_anything_is_sent():
    clear = BY_KEY["clear_passcode"]
    assert clear.platform_problem({"platform": "iPhone"}) is None
    problem = clear.platform_problem({"platform": "Mac", "serial_number": "C02X", "device_name": "Ann's Mac"})
    assert "is for iPhone, iPad" in problem and "Nothing was sent" in problem


def test_inputs_are_checked_by_their_params_and_connections_by_their_pattern():
    from airflow.sdk import Param

    lock = BY_KEY["lock_device"]
    assert lock.param("phone_number", None).resolve("+1 555 0100") == "+1 555 0100"
    with pytest.raises(Exception, match="pattern"):
        lock.param("phone_number", None).resolve("call me")
    conn = Param(**connection_param("kandji"))
    assert conn.resolve("kandji_eu") == "kandji_eu" and CONNECTION_PARAMS["kandji"] == "kandji_conn_id"
    with pytest.raises(Exception, match="pattern"):
        conn.resolve("../../etc")
