"""Credentials never leave their origin: redirects from either API, against a bystander origin on
loopback that records whatever reaches it."""

from __future__ import annotations

import json

import pytest

from kandji_oomnitza.hooks.errors import CrossOriginRedirectError
from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook


def _device_id(kandji) -> str:
    return next(d["device_id"] for d in kandji.get("devices") if d["platform"] == "Mac")


# What each API call does, and the fault path it goes through.
CALLS = {
    "kandji GET devices": (
        "kandji",
        "^/api/v1/devices$",
        lambda k, o: list(KandjiHook().iter_device_pages()),
    ),
    "kandji POST action": (
        "kandji",
        "/action/restart$",
        lambda k, o: KandjiHook().device_action(_device_id(k), "restart"),
    ),
    "oomnitza GET meta": ("oomnitza", "/meta$", lambda k, o: OomnitzaHook().field_metadata("assets")),
    "oomnitza POST bulk": (
        "oomnitza",
        "^/api/v3/bulk$",
        lambda k, o: OomnitzaHook().send_bulk(
            OomnitzaHook().start_run(data_type="assets", sync_field=["serial_number"]),
            [{"serial_number": "S1", "notes": "a payload that must not leave"}],
        ),
    ),
}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("call", list(CALLS))
def test_a_redirect_to_another_origin_is_refused_before_anything_is_sent_there(
    kandji_emulator, oomnitza_emulator, bystander, call, status
):
    service, path, send = CALLS[call]
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    admin.faults(
        scripted=[{"kind": "redirect", "status": status, "location": f"{bystander.url}/stolen", "path": path}]
    )
    with pytest.raises(CrossOriginRedirectError) as excinfo:
        send(kandji_emulator, oomnitza_emulator)
    message = str(excinfo.value)
    assert f"redirecting to {bystander.url}/stolen" in message and "Not followed" in message
    assert bystander.received == [], "nothing may reach another origin: no credential, no payload"
    assert len(admin.requests(path)) == 1  # refused, not retried


def test_a_same_origin_redirect_is_followed(kandji_emulator):
    kandji_emulator.faults(
        scripted=[
            {
                "kind": "redirect",
                "status": 302,
                "location": "/api/v1/prism/count?category=apps",
                "path": "/prism/count$",
            }
        ]
    )
    assert KandjiHook().prism_count("apps").rows == kandji_emulator.get("summary")["prism_app_rows"]
    first, second = kandji_emulator.requests("/prism/count$")
    assert first["status"] == 302 and second["status"] == 200 and second["token_ok"]


def test_a_redirect_error_names_where_without_the_query(kandji_emulator, bystander):
    kandji_emulator.faults(
        scripted=[
            {
                "kind": "redirect",
                "status": 302,
                "location": f"{bystander.url}/x?token=leaky",
                "path": "/prism/count$",
            }
        ]
    )
    with pytest.raises(CrossOriginRedirectError) as excinfo:
        KandjiHook().prism_count("apps")
    assert "leaky" not in str(excinfo.value) and json.dumps(bystander.received) == "[]"
