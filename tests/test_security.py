"""Credentials never leave their origin, and no text made from a response carries one: tested against
hostile servers on loopback (the emulators' redirect and echo faults, and a bystander origin that
records whatever reaches it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT, secrets_in
from hostile import CaptureServer

from kandji_oomnitza.hooks.base import ConfigurationError, CrossOriginRedirectError
from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
from kandji_oomnitza.integration_config import IntegrationFileError, load_integration
from kandji_oomnitza.redaction import redact, register_secret


@pytest.fixture
def bystander():
    server = CaptureServer()
    yield server
    server.stop()


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


@pytest.mark.e2e
def test_the_devices_dag_stops_at_a_cross_origin_redirect_of_its_load(
    run_dag, kandji_emulator, oomnitza_emulator, bystander
):
    oomnitza_emulator.faults(
        scripted=[
            {
                "kind": "redirect",
                "status": 307,
                "location": f"{bystander.url}/api/v3/bulk",
                "path": "^/api/v3/bulk$",
                "times": 100,
            }
        ]
    )
    result = run_dag("kandji_devices_and_software")
    assert result.state == "failed" and result.task_states["load"] == "failed" and result.tries["load"] == 1
    assert "Not followed: the token and the payload stay on the configured origin" in result.log
    assert bystander.received == []


# -- echoed credentials --------------------------------------------------------------------------
ECHOES = [
    (
        "kandji",
        {"kind": "echo", "status": 200, "path": "^/api/v1/devices$", "times": 1},
        "kandji_devices_and_software",
    ),
    (
        "kandji",
        {
            "kind": "echo",
            "status": 200,
            "body": {"status": "pending"},
            "path": "^/api/v1/prism/export$",
            "times": 1,
        },
        "export",
    ),
    (
        "kandji",
        {"kind": "echo", "status": 500, "path": "^/api/v1/prism/count$", "times": 1},
        "kandji_devices_and_software",
    ),
    ("kandji", {"kind": "echo", "status": 200, "path": "^/api/v1/users$", "times": 1}, "kandji_users"),
    (
        "oomnitza",
        {"kind": "echo", "status": 200, "path": "/meta$", "times": 3},
        "kandji_devices_and_software",
    ),
    (
        "oomnitza",
        {"kind": "echo", "status": 502, "path": "^/api/v3/bulk$", "times": 1},
        "kandji_devices_and_software",
    ),
    (
        "oomnitza",
        {"kind": "echo", "status": 403, "path": "connector_run_logs", "times": 1},
        "kandji_devices_and_software",
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("service", "fault", "dag"), ECHOES, ids=lambda v: v if isinstance(v, str) else v.get("path")
)
def test_a_server_echoing_the_credentials_leaves_no_token_anywhere(
    run_dag, integration_dag_from, kandji_emulator, oomnitza_emulator, service, fault, dag
):
    admin = kandji_emulator if service == "kandji" else oomnitza_emulator
    admin.faults(scripted=[fault])
    if dag == "export":
        kandji_emulator.put("settings", {"export_ready_after_polls": 1})
        dag = integration_dag_from("kandji_devices_and_software", software={"route": "prism_export"})
    if dag == "kandji_users":
        oomnitza_emulator.post(
            "records/users", [{"email": u["email"]} for u in kandji_emulator.get("users")[:5]]
        )
    result = run_dag(dag)  # run_dag itself checks the logs and every XCom (decoded) for both tokens
    echoed = [
        r for r in admin.get("requests") if r["path"].startswith("/api/") and r["status"] == fault["status"]
    ]
    assert echoed, "the hostile answer was served"
    summary = result.xcoms.get(("report", "return_value")) or result.xcoms.get(("report", "summary"))
    if summary and summary.get("error_log"):
        csv_text = Path(summary["error_log"].removeprefix("file://")).read_text()
        assert not secrets_in(csv_text)


def test_redaction_removes_tokens_headers_and_userinfo_whatever_the_shape():
    register_secret("tok-abcdef-123456")
    texts = [
        "Authorization: Bearer tok-abcdef-123456",
        '{"Authorization": "Bearer something-else"}',
        "{'authorization2': 'other-secret'}",
        "see https://admin:hunter2@acme.oomnitza.com/api",
        "raw tok-abcdef-123456 in a sentence",
    ]
    out = [redact(t) for t in texts]
    for text in out:
        for secret in ("tok-abcdef-123456", "something-else", "other-secret", "hunter2", "admin:"):
            assert secret not in text, text
    assert out[0] == "Authorization: Bearer ***" and "https://***@acme.oomnitza.com/api" in out[3]


# -- bounded parsing -----------------------------------------------------------------------------
BOMB = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
name: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
type: assets
sync_key: serial_number
mappings: {serial_number: Serial Number}
"""


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    with pytest.raises(IntegrationFileError) as excinfo:
        load_integration(path)
    message = str(excinfo.value)
    assert "aliases (*name) are not allowed" in message and "bomb.yaml" in message
    assert len(message) < 1000


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\\n" + "# padding\\n" * 40_000)
    with pytest.raises(IntegrationFileError, match="more than the 262144"):
        load_integration(path)


def test_validation_messages_quote_only_a_short_prefix_of_the_input(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(
        "name: x\ntype: assets\nsync_key: serial_number\npreference: " + "z" * 50_000 + "\n"
        "mappings: {serial_number: Serial Number}\n"
    )
    with pytest.raises(IntegrationFileError) as excinfo:
        load_integration(path)
    assert "preference" in str(excinfo.value) and len(str(excinfo.value)) < 1000


# -- hosts with credentials ------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["https://user:secret@acme.oomnitza.com", "user:secret@acme.oomnitza.com"])
def test_a_host_with_credentials_in_it_is_refused_without_quoting_them(airflow_connections, host):
    airflow_connections("oomnitza_default", host=host, password=OOMNITZA_TOKEN)
    with pytest.raises(ConfigurationError) as excinfo:
        OomnitzaHook().root_url()
    assert "user name or password" in str(excinfo.value) and "secret" not in str(excinfo.value)


def test_the_shipped_files_and_docs_hold_no_real_token():
    for path in [*ROOT.glob("include/**/*.yaml"), ROOT / "airflow_settings.yaml", ROOT / "README.md"]:
        text = path.read_text()
        assert KANDJI_TOKEN not in text and OOMNITZA_TOKEN not in text
        assert "Bearer ey" not in text, path  # no pasted JWT-like token


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
