"""Parsers for Kandji's quirks, checked on Kandji's official example payloads; emulator fidelity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

from kandji_oomnitza.common.kandji_values import is_empty, parse_bool, software_entry, to_int, valid_id
from kandji_oomnitza.hooks.pagination import NextLinkCursorPaginator, PrismCursorPaginator
from kandji_oomnitza.hooks.ratelimit import RateLimiter
from kandji_oomnitza.integrations.fields import CONVERTERS
from kandji_oomnitza.integrations.mapping import dig

# Kandji's official example payloads (see the folder's README for their source), kept with the tests.
EXAMPLES = ROOT / "tests" / "fixtures" / "kandji_examples"


def example(name: str):
    path = EXAMPLES / f"{name}.json"
    body = json.loads(path.read_text())["body"]
    if not isinstance(body, str):
        return body
    # Kandji hand-edited some examples, eliding list items as "..." or "{...}".
    return json.loads(re.sub(r",\s*(\{\.\.\.\}|\.\.\.)\s*,?(\s*[\]}])", r"\2", body))


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


def test_paginators_on_official_envelopes():
    users = example("list_users_success")
    assert NextLinkCursorPaginator().next_params(users, users["results"]) == {"cursor": "cD0yOTE0Mw=="}
    prism = example("applications_success")
    paginator = PrismCursorPaginator()
    # This envelope has "cursor": null: the listing is complete even though total (165) > 25 rows.
    assert paginator.next_params(prism, prism["data"]) is None


# -- the emulator matches Kandji's own examples ---------------------------------------------------
def test_emulator_records_have_the_official_keys():
    from include.emulators.kandji_fleet import Fleet

    fleet = Fleet(seed=1, device_count=60)
    official_device = example("list_devices_list_devices")[0]
    mac = next(d for d in fleet.devices if d["platform"] == "Mac")
    public = {k for k in mac if not k.startswith("_")}
    assert set(official_device) <= public
    official_app = example("get_device_apps_mac_apps")["apps"][0]
    assert set(official_app) == set(fleet.device_apps_payload(mac)[0])
    official_row = example("applications_success")["data"][0]
    emulated_row = fleet.prism_app_rows(0, 1)[0]
    assert set(emulated_row) <= set(official_row)
    assert set(official_row) & set(emulated_row) >= {"device_id", "serial_number", "name", "version", "path"}
    iphone = next(d for d in fleet.devices if d["platform"] == "iPhone")
    assert iphone["user"] == ""


def test_fleets_are_deterministic_and_large_ones_are_fast():
    import time

    from include.emulators.kandji_fleet import Fleet

    a, b = Fleet(seed=5, device_count=50), Fleet(seed=5, device_count=50)
    assert [d["serial_number"] for d in a.devices] == [d["serial_number"] for d in b.devices]
    assert a.apps(a.devices[0]["device_id"]) == b.apps(b.devices[0]["device_id"])
    started = time.perf_counter()
    big = Fleet(seed=1, device_count=20_000)
    elapsed = time.perf_counter() - started
    print(f"\n[fleet] 20,000 devices generated in {elapsed:.2f}s")
    platforms = {d["platform"] for d in big.devices}
    assert platforms == {"Mac", "iPhone", "iPad", "AppleTV", "Windows", "Android"}
    assert any(u["archived"] for u in big.users) and any(u["device_count"] == 0 for u in big.users)


# -- rate limiter ---------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(per_second, per_hour, clock):
    return RateLimiter(per_second, per_hour, clock=clock.time, wall_clock=clock.time, sleep=clock.sleep)


def test_limiter_spaces_requests_under_the_per_second_rate():
    clock = FakeClock()
    rl = limiter(50, None, clock)
    for _ in range(101):
        rl.acquire()
    assert clock.now - 1000.0 == pytest.approx(2.0)


def test_limiter_holds_the_hourly_budget():
    clock = FakeClock()
    rl = limiter(None, 10, clock)
    for _ in range(10):
        rl.acquire()
    assert clock.slept == []
    rl.acquire()
    assert clock.slept == [pytest.approx(3600.0)]


def test_limiter_backs_off_when_the_server_says_the_budget_is_low():
    clock = FakeClock()
    clock.now = 3600 * 100 + 1800.0  # half an hour left in Kong's window
    rl = limiter(50, 10_000, clock)
    rl.observe({"X-RateLimit-Remaining-Second": "1"})
    rl.acquire()
    assert clock.slept == [pytest.approx(1.0)]
    rl.observe({"X-RateLimit-Remaining-Hour": "100", "X-RateLimit-Limit-Hour": "10000"})
    assert rl.paced_interval == pytest.approx((1800.0 - 1.0) / 100)
    rl.observe({"X-RateLimit-Remaining-Hour": "0"})
    assert rl.paused_until > clock.now + 1700


def test_examples_folder_is_where_the_tests_expect_it():
    assert len(list(Path(EXAMPLES).glob("*.json"))) > 50


def test_every_run_id_gets_its_own_report_folder():
    from kandji_oomnitza.integrations.report import run_folder

    ids = ["run:1", "run_1", "run 1", "run/1", "manual__2026-11-27T10:00:00+00:00", "a" * 300, "a" * 301]
    folders = [run_folder(i) for i in ids]
    assert len(set(folders)) == len(ids)
    assert all("/" not in f and ":" not in f and len(f) <= 100 for f in folders)
    assert run_folder("run_1") == run_folder("run_1")  # stable: the page finds what the report wrote
