"""common/kandji_values.py: lenient readers for Kandji's quirks, checked on Kandji's official example payloads."""

from __future__ import annotations

import pytest
from helpers.kandji_examples import example

from kandji_oomnitza.common.kandji_values import is_empty, parse_bool, software_entry, to_int, valid_id
from kandji_oomnitza.integrations.fields import CONVERTERS
from kandji_oomnitza.integrations.mapping import dig


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("True", True), ("False", False), ("Yes", True), ("No", False),
     ("", None), (None, None), ("maybe", None), (1, True), (0, False)],
)  # fmt: skip
def test_booleans_and_string_booleans(value, expected):
    assert parse_bool(value) is expected


def test_empty_values():
    assert all(is_empty(v) for v in (None, "", " ", [], {}))
    assert not any(is_empty(v) for v in (0, False, "x", [1]))


def _date(value):
    import pandas as pd

    result = CONVERTERS["date"].function(pd.DataFrame({"v": [value]}), {})
    return result.values.iloc[0], bool(result.errors.iloc[0])


def test_user_object_or_empty_string_on_official_examples():
    mac, iphone = example("get_device_get_mac"), example("list_devices_list_iphone_only")[0]
    assert dig(mac, "user.email")
    assert iphone["user"] == "" and dig(iphone, "user.email") is None  # an unassigned device sends no user
    never_checked_in = example("get_device_get_ipad")
    assert never_checked_in["last_check_in"] == "" and _date(never_checked_in["last_check_in"]) == (
        None,
        False,
    )
    details = example("get_device_details_get_mac_details")
    assert dig(details, "general.assigned_user.id")
    assert parse_bool(details["mdm"]["mdm_enabled"]) is True
    assert _date(details["mdm"]["last_check_in"])[0].endswith("Z")


def test_ids_and_numbers():
    assert valid_id("03f81208-2b6a-4a77-81f5-cf1633bcfb95") and not valid_id("bad.id_1")
    assert not valid_id(None) and not valid_id("") and not valid_id("../users") and not valid_id("a" * 65)
    assert to_int("12") == 12 and to_int("x") is None and to_int(None, 0) == 0 and to_int("", 5) == 5


def test_software_entries_from_every_record_shape():
    mac_apps = example("get_device_apps_mac_apps")["apps"]
    ipad_apps = example("get_device_apps_ipad_apps")["apps"]
    prism_rows = example("applications_success")["data"]
    for app in mac_apps + ipad_apps + prism_rows:
        entry = software_entry(app)
        assert entry and entry["name"]
    assert software_entry(mac_apps[0])["path"].endswith(".app")
    assert software_entry(ipad_apps[0])["path"] is None  # iPad apps have path ""
    windows = {
        "name": "Microsoft.Copilot",
        "display_name": "Copilot",
        "version": "1.2",
        "installed_path": "C:\\x",
    }
    android = {"display_name": "Slack", "package_name": "com.Slack", "version_name": "25.10"}
    assert software_entry(windows) == {"name": "Copilot", "version": "1.2", "path": "C:\\x"}
    assert software_entry(android) == {"name": "Slack", "version": "25.10", "path": None}
    assert software_entry({"bundle_id": "x"}) is None


# -- rate limiter ---------------------------------------------------------------------------------
