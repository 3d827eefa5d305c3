"""The Kandji hook against the Kandji emulator, over real HTTP on loopback."""

from __future__ import annotations

import math

import pytest
import requests
from helpers.harness import KANDJI_TOKEN

from kandji_oomnitza.exceptions import ConfigurationError
from kandji_oomnitza.hooks.errors import ApiError, MalformedResponseError, PermanentApiError
from kandji_oomnitza.hooks.kandji import (
    AmbiguousDeviceError,
    DeviceNotFoundError,
    InvalidIdError,
    KandjiHook,
    PrismExportError,
)
from kandji_oomnitza.hooks.kandji_export import export_prism


def hook(**kwargs) -> KandjiHook:
    return KandjiHook(**kwargs)


def all_devices(h: KandjiHook) -> list[dict]:
    return [d for page in h.iter_device_pages() for d in page]


def get_device(h: KandjiHook, device_id: str) -> dict:
    return h.get_json(f"api/v1/devices/{device_id}")


# -- connection -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "https://acme.api.kandji.io"}, "https://acme.api.kandji.io"),
        ({"host": "https://acme.api.kandji.io/api/v1/"}, "https://acme.api.kandji.io"),
        ({"host": "acme.api.eu.kandji.io"}, "https://acme.api.eu.kandji.io"),
        ({"host": "http://127.0.0.1:8181"}, "http://127.0.0.1:8181"),
        ({"extra": {"subdomain": "acme"}}, "https://acme.api.kandji.io"),
        ({"extra": {"subdomain": "acme-2", "region": "EU"}}, "https://acme-2.api.eu.kandji.io"),
    ],
)
def test_base_url_from_host_or_subdomain_and_region(airflow_connections, fields, expected):
    airflow_connections("kandji_default", password="t", **fields)
    assert hook().api_base_url == expected


@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"extra": {"subdomain": "acme.evil.com"}}, "extra 'subdomain'"),
        ({"extra": {"subdomain": "-acme"}}, "extra 'subdomain'"),
        ({"extra": {"subdomain": "acme", "region": "apac"}}, "extra 'region'"),
        ({}, "host"),
        ({"host": "ftp://acme"}, "host"),
    ],
)
def test_invalid_connection_names_connection_and_field(airflow_connections, fields, field_named):
    airflow_connections("kandji_default", password="t", **fields)
    with pytest.raises(ConfigurationError) as excinfo:
        hook().api_base_url  # noqa: B018
    assert "Connection 'kandji_default'" in str(excinfo.value)
    assert field_named in str(excinfo.value)


def test_empty_token_is_a_clear_error(airflow_connections):
    airflow_connections("kandji_default", host="https://acme.api.kandji.io")
    with pytest.raises(ConfigurationError, match="password is empty"):
        hook().get_conn()


def test_bearer_token_never_basic_even_with_login(kandji_emulator, airflow_connections, kandji_process):
    airflow_connections("kandji_default", host=kandji_process.url, login="admin", password=KANDJI_TOKEN)
    hook().get_device_apps(kandji_emulator.get("devices")[0]["device_id"])
    (entry,) = kandji_emulator.requests(r"/apps$")
    assert entry["auth_scheme"] == "Bearer" and entry["token_ok"]
    assert not entry["basic_auth"]
    assert "Authorization" not in entry["headers"]  # the recorder strips credentials
    assert KANDJI_TOKEN not in str(kandji_emulator.get("requests"))


def test_wrong_token_is_401_with_a_fix_and_no_retry(kandji_emulator, airflow_connections, kandji_process):
    airflow_connections("kandji_default", host=kandji_process.url, password="wrong-token")
    with pytest.raises(ApiError) as excinfo:
        all_devices(hook())
    message = str(excinfo.value)
    assert excinfo.value.status == 401
    assert "kandji_default" in message and "Settings > Access" in message and "wrong-token" not in message
    assert len(kandji_emulator.requests("/api/v1/devices")) == 1


def test_missing_permission_is_403_naming_the_endpoint(kandji_emulator):
    kandji_emulator.put("permissions", {KANDJI_TOKEN: ["prism"]})
    with pytest.raises(ApiError) as excinfo:
        hook().prism_count("apps")
    assert excinfo.value.status == 403
    assert "prism/count" in str(excinfo.value) and "permissions" in str(excinfo.value)


# -- listings -------------------------------------------------------------------------------------
def test_devices_are_paged_300_at_a_time_in_a_stable_order(kandji_emulator):
    kandji_emulator.post("reset", {"devices": 700, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    pages = list(hook().iter_device_pages(prefetch=1))
    assert [len(p) for p in pages] == [300, 299, 101]  # pages overlap by one; repeats are dropped
    ids = [d["device_id"] for p in pages for d in p]
    assert len(set(ids)) == 700
    calls = kandji_emulator.requests("/api/v1/devices$")
    assert len(calls) == math.ceil(700 / 300) + 1  # the last page, holding only the overlap, ends it
    assert all(c["query"]["limit"] == "300" and c["query"]["ordering"] == "device_id" for c in calls)
    assert [int(c["query"]["offset"]) for c in calls] == [0, 299, 598, 699]  # pages overlap by one


def test_device_pages_in_flight_give_the_same_listing_with_at_most_a_few_guesses_more(kandji_emulator):
    kandji_emulator.post("reset", {"devices": 1300, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    one_by_one = [d["device_id"] for p in hook().iter_device_pages(prefetch=1) for d in p]
    needed = {int(c["query"]["offset"]) for c in kandji_emulator.requests("/api/v1/devices$")}
    kandji_emulator.clear_requests()
    ahead = [d["device_id"] for p in hook().iter_device_pages(prefetch=4) for d in p]
    asked = [int(c["query"]["offset"]) for c in kandji_emulator.requests("/api/v1/devices$")]
    assert ahead == one_by_one and len(set(ahead)) == 1300
    # Only the first page is asked alone (a wrong token is refused once); then pages in flight, each used
    # only where the walk asks for it, and at most three guesses past the end.
    assert needed <= set(asked) and len(asked) - len(needed) <= 3
    assert asked[0] == 0


def test_device_added_mid_walk_is_yielded_once(kandji_emulator):
    kandji_emulator.post("reset", {"devices": 650, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    kandji_emulator.put("settings", {"mutate_devices_at_offset": {"offset": 300, "remove": 0, "add": 3}})
    h = hook()
    ids = [d["device_id"] for d in all_devices(h)]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 650


def test_prism_follows_cursor_past_short_pages(kandji_emulator):
    summary = kandji_emulator.get("summary")
    rows = [r for page in hook().iter_prism_pages("apps") for r in page]
    assert len(rows) == summary["prism_app_rows"]
    calls = kandji_emulator.requests("/api/v1/prism/apps")
    assert all(c["query"]["limit"] == "300" for c in calls)
    assert "cursor" not in calls[0]["query"] and all("cursor" in c["query"] for c in calls[1:])
    sizes = [len(p) for p in hook().iter_prism_pages("apps")]
    assert any(s < 300 for s in sizes[:-1]), "the emulator should serve a short page mid-listing"


def test_prism_falls_back_to_offset_without_cursor_and_null_total(kandji_emulator):
    kandji_emulator.put("settings", {"prism_omit_cursor": True, "prism_total_null": True})
    summary = kandji_emulator.get("summary")
    rows = [r for page in hook().iter_prism_pages("apps") for r in page]
    assert len(rows) == summary["prism_app_rows"]
    calls = kandji_emulator.requests("/api/v1/prism/apps")
    assert "offset" in calls[-1]["query"]


def test_prism_count_and_device_families(kandji_emulator):
    summary = kandji_emulator.get("summary")
    assert hook().prism_count("apps") == (summary["prism_app_rows"], False)
    macs = [r for page in hook().iter_prism_pages("apps", device_families=["Mac"]) for r in page]
    assert macs and {r["device__family"] for r in macs} == {"Mac"}


def test_users_follow_cursor_not_the_foreign_next_host(kandji_emulator):
    kandji_emulator.post("reset", {"devices": 10, "users": 650, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    pages = list(hook().iter_user_pages())
    assert [len(p) for p in pages] == [300, 300, 50]
    calls = kandji_emulator.requests("/api/v1/users")
    assert len(calls) == 3 and all(c["token_ok"] for c in calls)
    assert "cursor" in calls[1]["query"]


def test_users_filters_pass_through(kandji_emulator):
    archived = [u for p in hook().iter_user_pages(archived="true") for u in p]
    assert archived and all(u["archived"] for u in archived)


# -- single reads ---------------------------------------------------------------------------------
def test_device_get_details_apps_and_commands(kandji_emulator):
    devices = kandji_emulator.get("devices")
    mac = next(d for d in devices if d["platform"] == "Mac")
    h = hook()
    assert get_device(h, mac["device_id"])["serial_number"] == mac["serial_number"]
    details = h.get_device_details(mac["device_id"])
    assert details["mdm"]["mdm_enabled"] in ("True", "False")
    assert len(h.get_device_apps(mac["device_id"])) == mac["_app_count"]
    assert h.get_device_commands(mac["device_id"]) == []


def test_unknown_device_is_404_with_kandji_message(kandji_emulator):
    with pytest.raises(ApiError) as excinfo:
        hook().get_device_details("00000000-0000-0000-0000-000000000000")
    assert excinfo.value.status == 404 and "Not found." in str(excinfo.value)


def test_ids_that_would_change_the_path_are_refused_before_any_call(kandji_emulator):
    with pytest.raises(InvalidIdError):
        hook().get_device_details("../users")
    assert kandji_emulator.requests("/api/") == []


# -- serial lookup --------------------------------------------------------------------------------
def test_find_by_serial_keeps_only_the_exact_match(kandji_emulator):
    kandji_emulator.post("devices", {"serial_number": "C02TEST12345", "platform": "Mac"})
    kandji_emulator.post("devices", {"serial_number": "C02TEST1234", "platform": "Mac"})
    assert hook().find_device_by_serial("C02TEST1234")["serial_number"] == "C02TEST1234"
    assert hook().find_device_by_serial("c02test12345")["serial_number"] == "C02TEST12345"


def test_find_by_serial_none_and_several_are_distinct_errors(kandji_emulator):
    kandji_emulator.post("devices", {"serial_number": "DUPLICATE001", "platform": "Mac"})
    kandji_emulator.post("devices", {"serial_number": "DUPLICATE001", "platform": "iPad"})
    with pytest.raises(AmbiguousDeviceError, match="2 Kandji devices have serial number 'DUPLICATE001'"):
        hook().find_device_by_serial("DUPLICATE001")
    with pytest.raises(
        DeviceNotFoundError,
        match=r"No Kandji device has serial number .DUPLICATE00.*2 devices have serial numbers containing it",
    ):
        hook().find_device_by_serial("DUPLICATE00")
    with pytest.raises(DeviceNotFoundError, match="No Kandji device has serial number 'NOSUCHSERIAL'"):
        hook().find_device_by_serial("NOSUCHSERIAL")


# -- Prism export ---------------------------------------------------------------------------------
def test_prism_export_polls_and_downloads_without_the_token(kandji_emulator):
    summary = kandji_emulator.get("summary")
    chunks = list(export_prism(hook(), "apps", poll_seconds=0.01, chunk_rows=1000))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == summary["prism_app_rows"]
    assert {"device_id", "serial_number", "name", "version", "path"} <= set(chunks[0].columns)
    narrow = list(export_prism(hook(), "apps", poll_seconds=0.01, required_columns=("device_id", "name")))
    assert set(narrow[0].columns) == {"device_id", "name"}
    downloads = kandji_emulator.requests("^/_s3/")
    assert len(downloads) == 2
    assert all(d["auth_scheme"] is None and not d["token_ok"] for d in downloads)
    assert len(kandji_emulator.requests("/prism/export/")) >= 2  # polled while pending


def test_prism_export_and_prism_pages_list_the_same_app_rows(kandji_emulator):
    def key(row):
        return (row["device_id"], row["name"], row["version"], row["path"] or "")

    exported = sorted(
        key(row)
        for chunk in export_prism(hook(), "apps", poll_seconds=0.01)
        for row in chunk.to_dict("records")
    )
    paged = sorted(key(row) for page in hook().iter_prism_pages("apps") for row in page)
    assert exported == paged and len(paged) == kandji_emulator.get("summary")["prism_app_rows"]


def test_prism_export_failure_and_unexpected_columns(kandji_emulator):
    kandji_emulator.put("settings", {"export_mode": "failed"})
    with pytest.raises(PrismExportError, match="status 'failed'"):
        list(export_prism(hook(), "apps", poll_seconds=0.01))
    kandji_emulator.put("settings", {"export_mode": "bad_columns"})
    with pytest.raises(PrismExportError, match="lacks columns"):
        list(export_prism(hook(), "apps", poll_seconds=0.01, required_columns=("device_id", "serial_number")))


def test_an_export_cut_on_a_row_boundary_is_caught_by_the_row_count(kandji_emulator):
    """A cut mid-row shows in the file itself; a cut exactly after a row does not, but the rows then fall
    short of what /prism/count said, and the export is refused rather than read as complete."""
    kandji_emulator.put("settings", {"export_ready_after_polls": 1})
    h = hook()
    job = h.request("POST", "api/v1/prism/export", json_body={"category": "apps"}, decode=lambda r: r.json())
    job = h.get_json(f"api/v1/prism/export/{job['id']}")
    whole = requests.get(job["signed_url"], timeout=30).content
    boundary = whole.index(b"\n", len(whole) // 2) + 1  # a complete file, as far as the bytes tell
    count = h.prism_count("apps")
    kandji_emulator.faults(
        scripted=[{"kind": "truncate", "bytes": boundary, "framing": "eof", "path": "^/_s3/"}]
    )
    with pytest.raises(PrismExportError, match=f"but Prism counted {count.rows}: the file is incomplete"):
        list(export_prism(h, "apps", poll_seconds=0.01, expected=count))
    kandji_emulator.faults(
        scripted=[{"kind": "truncate", "bytes": boundary - 5, "framing": "eof", "path": "^/_s3/"}]
    )
    with pytest.raises(PrismExportError, match="ends mid-row"):
        list(export_prism(h, "apps", poll_seconds=0.01, expected=count))


def test_prism_export_bad_category_is_kandjis_400(kandji_emulator):
    with pytest.raises(ApiError, match="Invalid category: nope"):
        list(export_prism(hook(), "nope"))


# -- actions --------------------------------------------------------------------------------------
def _device(admin, platform):
    return next(d for d in admin.get("devices") if d["platform"] == platform)


def test_actions_send_pascal_case_bodies_and_lock_returns_pin(kandji_emulator):
    mac = _device(kandji_emulator, "Mac")
    h = hook()
    assert h.device_action(mac["device_id"], "setname", {"DeviceName": "Renamed Mac"}) == {}
    result = h.device_action(mac["device_id"], "lock", {"Message": "Lost", "PhoneNumber": "555"})
    assert set(result) == {"PIN"} and len(result["PIN"]) == 6
    (setname,) = kandji_emulator.requests("/action/setname")
    assert setname["body"] == {"DeviceName": "Renamed Mac"} and setname["method"] == "POST"
    assert get_device(h, mac["device_id"])["device_name"] == "Renamed Mac"


def test_action_answers_are_clear_failures(kandji_emulator):
    mac = _device(kandji_emulator, "Mac")
    iphone = _device(kandji_emulator, "iPhone")
    h = hook()
    h.device_action(mac["device_id"], "lock")
    with pytest.raises(ApiError, match=r"This device is already locked\."):
        h.device_action(mac["device_id"], "lock")
    with pytest.raises(ApiError, match="Command is not allowed for current device"):
        h.device_action(mac["device_id"], "clearpasscode")
    h.device_action(iphone["device_id"], "restart")
    with pytest.raises(ApiError, match="Command already running"):
        h.device_action(iphone["device_id"], "restart")


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 503}, {"kind": "timeout", "seconds": 2}])
def test_actions_are_never_resent_after_they_may_have_arrived(kandji_emulator, fault):
    mac = _device(kandji_emulator, "Mac")
    kandji_emulator.faults(scripted=[{**fault, "path": "/action/", "times": 5}])
    with pytest.raises(ApiError):
        hook(timeout=0.5).device_action(mac["device_id"], "restart")
    assert len(kandji_emulator.requests("/action/restart")) == 1


def test_actions_are_retried_after_429(kandji_emulator):
    mac = _device(kandji_emulator, "Mac")
    kandji_emulator.faults(
        scripted=[{"kind": "status", "status": 429, "retry_after": 0.05, "path": "/action/", "times": 2}]
    )
    hook().device_action(mac["device_id"], "restart")
    assert [r["status"] for r in kandji_emulator.requests("/action/restart")] == [429, 429, 200]


# -- resilience -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 429, "retry_after": 0.05},
        {"kind": "status", "status": 502},
        {"kind": "reset"},
        {"kind": "timeout", "seconds": 1.5},
        {"kind": "malformed_json"},
        {"kind": "html", "status": 503},
        {"kind": "truncate", "bytes": 300},
        {"kind": "truncate", "bytes": 300, "framing": "length"},
        {"kind": "truncate", "bytes": 300, "framing": "eof"},
    ],
    ids=lambda f: f["kind"] + str(f.get("status", "")) + f.get("framing", ""),
)
def test_reads_retry_transient_faults(kandji_emulator, fault):
    kandji_emulator.faults(scripted=[{**fault, "path": "/api/v1/devices$", "times": 2}])
    h = hook(timeout=0.5)
    assert len(all_devices(h)) == 120
    assert h.retries == 2
    statuses = [r["status"] for r in kandji_emulator.requests("/api/v1/devices$")]
    assert len(statuses) == 2 + 2  # two faults, then the listing: 120 devices, then the overlap alone


def test_retry_after_is_honoured(kandji_emulator, monkeypatch):
    waits = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    kandji_emulator.faults(
        scripted=[{"kind": "status", "status": 429, "retry_after": 7, "path": "/prism/count"}]
    )
    hook().prism_count("apps")
    assert waits == [7.0]


def test_retries_are_bounded_and_the_error_names_status_endpoint_and_message(kandji_emulator):
    kandji_emulator.faults(
        scripted=[{"kind": "status", "status": 500, "body": {"detail": "database on fire"}, "times": 10}]
    )
    with pytest.raises(ApiError) as excinfo:
        hook(max_attempts=3).prism_count("apps")
    message = str(excinfo.value)
    assert excinfo.value.status == 500
    assert "HTTP 500" in message and "GET api/v1/prism/count" in message and "database on fire" in message
    assert KANDJI_TOKEN not in message
    assert len(kandji_emulator.requests("/prism/count")) == 3


def test_client_errors_are_not_retried(kandji_emulator):
    kandji_emulator.faults(scripted=[{"kind": "status", "status": 400, "body": ["Bad filter"], "times": 5}])
    with pytest.raises(PermanentApiError, match="Bad filter"):
        hook().prism_count("apps")
    assert len(kandji_emulator.requests("/prism/count")) == 1


def test_malformed_page_that_stays_malformed_fails_clearly(kandji_emulator):
    kandji_emulator.faults(scripted=[{"kind": "malformed_json", "path": "/api/v1/devices$", "times": 10}])
    with pytest.raises(MalformedResponseError, match="could not be read"):
        all_devices(hook(max_attempts=2))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("This device is already locked.", "This device is already locked."),
        (["Device is not in lost mode."], "Device is not in lost mode."),
        ({"detail": "User still assigned"}, "User still assigned"),
        ({"message": "no Route matched with those values"}, "no Route matched"),
    ],
)
def test_error_bodies_of_every_shape(kandji_emulator, body, expected):
    kandji_emulator.faults(scripted=[{"kind": "status", "status": 400, "body": body}])
    with pytest.raises(ApiError, match=expected):
        hook().prism_count("apps")


def test_html_error_body(kandji_emulator):
    kandji_emulator.faults(scripted=[{"kind": "html", "status": 404}])
    with pytest.raises(ApiError, match="Error 404"):
        hook().prism_count("apps")


def test_server_rate_limit_is_survived(kandji_emulator):
    kandji_emulator.put("rate_limit", {"per_second": 5, "per_hour": None, "retry_after": 0.2})
    h = hook()
    counts = [h.prism_count("apps") for _ in range(12)]
    assert len(set(counts)) == 1
    assert h.calls >= 12


def test_client_limiter_keeps_under_the_per_second_budget(
    kandji_emulator, airflow_connections, kandji_process
):
    airflow_connections(
        "kandji_default", host=kandji_process.url, password=KANDJI_TOKEN, extra={"requests_per_second": 20}
    )
    kandji_emulator.put("rate_limit", {"per_second": 20, "per_hour": None})
    h = hook()
    for _ in range(30):
        h.prism_count("apps")
    assert [r["status"] for r in kandji_emulator.requests("/prism/count")] == [200] * 30


def test_device_removed_mid_walk_is_not_lost(kandji_emulator):
    kandji_emulator.post("reset", {"devices": 650, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    # Before page two, remove the first device in order: every later device shifts back by one, so a
    # plain offset walk would skip the device that moves from position 300 to 299.
    kandji_emulator.put("settings", {"mutate_devices_at_offset": {"offset": 300, "remove": 1, "add": 0}})
    h = hook()
    ids = [d["device_id"] for d in all_devices(h)]
    remaining = {d["device_id"] for d in kandji_emulator.get("devices")}
    assert remaining <= set(ids), "a device still in Kandji was skipped"
    assert len(ids) == len(set(ids))
    assert h.rewalks == 1


def test_a_page_that_is_not_utf8_is_unreadable_never_loaded_with_replacement_characters(airflow_connections):
    from helpers.hostile import CaptureServer

    from kandji_oomnitza.hooks.errors import MalformedResponseError

    latin1 = b'[{"device_id": "d1", "device_name": "Caf\xe9 Mac", "serial_number": "C02X"}]'
    server = CaptureServer((200, "application/json; charset=utf-8", latin1))
    try:
        airflow_connections(
            "kandji_default",
            host=server.url,
            password=KANDJI_TOKEN,
            extra={"max_attempts": 2, "backoff_seconds": 0},
        )
        with pytest.raises(MalformedResponseError) as raised:
            list(KandjiHook().iter_device_pages())
    finally:
        server.stop()
    message = str(raised.value)
    assert "GET api/v1/devices" in message and "not UTF-8 (byte 0xe9 at position" in message
