"""The least-privilege matrix, end to end: every endpoint each DAG calls, run with a token that lacks
its permission (the emulators' per-token permission models), ends in the documented state.

Essential calls fail the run at once, in one task attempt, with a message naming the permission;
auxiliary calls never fail a run. docs/security.md documents the same matrix (checked below).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
import yaml
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT

pytestmark = pytest.mark.e2e
DEVICES, USERS = "kandji_devices_and_software", "kandji_users"
LOCK, DETAILS = "kandji_preset_lock_device", "kandji_preset_get_asset_details"


@dataclass(frozen=True)
class Row:
    dag: str
    service: str  # kandji | oomnitza
    permission: str  # the emulator's permission name
    essential: bool
    failed_task: str | None = None  # essential rows: the task that fails, in one attempt
    says: str = ""  # essential rows: words of the failure message; auxiliary rows: of the warning
    variant: str = ""  # a setting the row needs (a details mapping, the export route)

    @property
    def id(self) -> str:
        return f"{self.dag}-{self.service}-{self.permission}{'-' + self.variant if self.variant else ''}"


MATRIX = [
    Row(DEVICES, "kandji", "devices.list", True, "extract", "lacks the permission 'Device list'"),
    Row(DEVICES, "kandji", "devices.apps", True, "extract", "lacks the permission 'Application list'"),
    Row(DEVICES, "kandji", "devices.details", True, "extract", "'Device details'", variant="details"),
    Row(DEVICES, "kandji", "prism", False, says="Prism unavailable to this token (HTTP 403)"),
    Row(DEVICES, "kandji", "prism.export", False, says="Prism pages used instead", variant="export"),
    Row(DEVICES, "oomnitza", "assets.meta", False, says="field metadata could not be read"),
    Row(DEVICES, "oomnitza", "connector", True, "load", "permission for connector uploads"),
    Row(DEVICES, "oomnitza", "connector_logs", False, says="outcome of run"),
    Row(USERS, "kandji", "users.list", True, "extract", "lacks the permission 'User list'"),
    Row(USERS, "oomnitza", "users.meta", False, says="field metadata could not be read"),
    Row(USERS, "oomnitza", "connector", True, "load", "permission for connector uploads"),
    Row(USERS, "oomnitza", "connector_logs", False, says="outcome of run"),
    Row(LOCK, "kandji", "devices.list", True, "run_action", "lacks the permission 'Device list'"),
    Row(LOCK, "kandji", "devices.action.lock", True, "run_action", "the device action 'lock'"),
    Row(LOCK, "kandji", "devices.commands", False, says="delivery could not be checked"),
    Row(DETAILS, "kandji", "devices.details", True, "run_action", "'Device details'"),
    Row(DETAILS, "oomnitza", "connector", True, "run_action", "permission for connector uploads"),
    Row(DETAILS, "oomnitza", "connector_logs", False, says="outcome could not be read"),
]


def _prepare(row: Row, kandji, oomnitza, integration_dag_from):
    """The DAG (id or object) and conf the row runs, with the fleet and Oomnitza it needs."""
    if row.dag == USERS:
        users = kandji.get("users")
        oomnitza.post("records/users", [{"email": u["email"]} for u in users[:10]])
        return USERS, None
    if row.dag == DEVICES:
        if row.variant == "details":
            data = yaml.safe_load((ROOT / "include/integrations" / f"{DEVICES}.yaml").read_text())
            mappings = data["mappings"] | {"notes": {"path": "details.hardware_overview.processor_name"}}
            return integration_dag_from(DEVICES, mappings=mappings), None
        if row.variant == "export":
            kandji.put("settings", {"export_ready_after_polls": 1})
            return integration_dag_from(
                DEVICES, software={"route": "auto", "export_threshold_rows": 10}
            ), None
        return DEVICES, None
    device = next(d for d in kandji.get("devices") if d["platform"] == "iPhone")
    if row.dag == DETAILS:
        oomnitza.post("records/assets", [{"serial_number": device["serial_number"]}])
    return row.dag, {"serial_number": device["serial_number"]}


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.id)
def test_a_token_without_one_permission_ends_in_the_documented_state(
    row, run_dag, kandji_emulator, oomnitza_emulator, integration_dag_from
):
    dag, conf = _prepare(row, kandji_emulator, oomnitza_emulator, integration_dag_from)
    admin, token = (
        (kandji_emulator, KANDJI_TOKEN) if row.service == "kandji" else (oomnitza_emulator, OOMNITZA_TOKEN)
    )
    admin.put("permissions", {token: [row.permission]})
    result = run_dag(dag, conf=conf)
    refused = [r for r in admin.get("requests") if r["status"] == 403]
    assert refused, f"the run never called an endpoint needing {row.permission}"
    if row.essential:
        assert result.state == "failed", result.task_states
        assert result.task_states[row.failed_task] == "failed"
        assert result.tries[row.failed_task] == 1, "a permanent error must not be retried"
        assert row.says in result.log, row.says
        # No refused request is sent again (calls already in flight on other threads may be refused too).
        sent = [(r["method"], r["path"], json.dumps(r["body"], sort_keys=True)) for r in refused]
        assert len(sent) == len(set(sent)), refused
        if row.failed_task == "extract":
            assert oomnitza_emulator.requests("^/api/v3/bulk") == []  # nothing sent
    else:
        assert result.state == "success", result.task_states
        assert row.says in result.log, row.says
    if row.dag in (DEVICES, USERS):
        summary = result.xcoms.get(("report", "return_value")) or result.xcom("report", key="summary")
        if not row.essential and row.service == "oomnitza" and row.permission.endswith("meta"):
            assert any(row.says in w for w in summary["warnings"])
        if row.permission == "connector_logs":
            assert summary["unconfirmed"] == summary["records_sent"] > 0 and summary["failures"] == 0
        if row.permission == "connector":
            assert (
                summary["refused"] > 0
                and summary["refused"] + summary["never_sent"] == summary["kandji_records"]
            )
    if row.dag == LOCK and not row.essential:
        assert result.xcom("run_action")["delivery"].startswith("unknown (")
        assert len(kandji_emulator.requests("/action/lock$")) == 1


def test_security_md_documents_every_row():
    text = (ROOT / "docs" / "security.md").read_text()
    matrix = text[text.index("## Least privilege") :]
    for row in MATRIX:
        line = next((ln for ln in matrix.splitlines() if f"`{row.permission}`" in ln and row.dag in ln), None)
        assert line, f"docs/security.md has no matrix row for {row.dag} / {row.permission}"
        assert ("essential" if row.essential else "auxiliary") in line, line
    assert re.search(r"\|\s*`?kandji_devices_and_software`?", matrix)
