"""Credentials never leave their origin, and no text made from a response carries one: tested against
hostile servers on loopback (the emulators' redirect and echo faults, and a bystander origin that
records whatever reaches it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.harness import secrets_in


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
