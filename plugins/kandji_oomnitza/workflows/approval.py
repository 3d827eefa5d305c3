"""What a person is asked, and what their answer means.

The question is Markdown that shows the asset, the Kandji device resolved for its serial number, the
action and its inputs; every value from a record is literal text there. The answer is read from
Airflow's own record of it (the resume event Airflow built from its human-in-the-loop record), never
from an XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kandji_oomnitza.common.approval import md_literal, read_answer
from kandji_oomnitza.workflows.config import Workflow

if TYPE_CHECKING:
    from kandji_oomnitza.workflows.handover import Request


def approval_subject(workflow: Workflow, serial: str, device_name: Any) -> str:
    return f"{workflow.action.definition.title} on {serial} ({device_name})?"


def approval_body(workflow: Workflow, request: Request) -> str:
    preset = workflow.action.definition
    device = request["device"]
    shown = {
        k: v for k, v in request["inputs"].items() if k not in ("serial_number", "confirm_serial_number")
    }
    inputs = "\n".join(f"- {k}: {md_literal(v)}" for k, v in shown.items()) or "- none"
    fields = "\n".join(f"- {k}: {md_literal(v)}" for k, v in request["record"].items())
    return f"""**{preset.title}** on **{md_literal(request["serial_number"])}** because the Oomnitza asset now matches
{md_literal(workflow.trigger.describe())}.

**Oomnitza asset** {md_literal(request["record_id"])}
{fields}

**Kandji device** (resolved now from the serial number, exact match)
- name: {md_literal(device.get("device_name"))}
- platform / model: {md_literal(device.get("platform"))} / {md_literal(device.get("model"))}
- user: {md_literal(device.get("user"))}
- device id: {md_literal(device.get("device_id"))}

**Action inputs**
{inputs}

Approve to send it once. Reject, or no answer within the timeout, sends nothing."""


def approval_decision(
    workflow: Workflow, answer: dict[str, Any] | None
) -> tuple[str | None, dict[str, Any] | None]:
    """What Airflow's own record of the answer says (common/approval.py): (who approved, None) when a
    listed approver (anyone allowed, without a list) answered Approve; else (None, why nothing is sent:
    ``{"outcome": ..., "failure": ...}``)."""
    read = read_answer(answer, workflow.approval.approvers, workflow.approval.timeout, "the approvers")
    if read.approved_by is not None:
        return read.approved_by, None
    return None, {"outcome": f"{read.why_not}: nothing sent", "failure": read.failure}
