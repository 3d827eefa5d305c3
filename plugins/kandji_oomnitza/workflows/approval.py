"""What a person is asked, and what their answer means.

The question is Markdown that shows the asset, the Kandji device resolved for its serial number, the
action and its inputs; every value from a record is literal text there. The answer is read from
Airflow's own record of it (the resume event Airflow built from its human-in-the-loop record), never
from an XCom.
"""

from __future__ import annotations

import re
from typing import Any

from kandji_oomnitza.settings_files import duration_words
from kandji_oomnitza.workflows.config import Workflow

APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"


def md_literal(value: Any) -> str:
    """A record's value as literal text in the approval's Markdown: an inline code span, so whoever can
    edit an asset in Oomnitza cannot put a link (even a bare URL, which GitHub-style Markdown turns into
    one), an image or formatting in front of the approver."""
    if value in (None, ""):
        return "(none)"
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def approval_subject(workflow: Workflow, serial: str, device_name: Any) -> str:
    return f"{workflow.action.definition.title} on {serial} ({device_name})?"


def approval_body(workflow: Workflow, request: dict[str, Any]) -> str:
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
    """What Airflow's own record of the answer says (the resume event Airflow built from its
    human-in-the-loop record when the person answered, or when the timeout applied the default): (who
    approved, None) when a listed approver (anyone allowed, without a list) answered Approve; else
    (None, why nothing is sent: ``{"outcome": ..., "failure": ...}``)."""
    if not isinstance(answer, dict) or "chosen_options" not in answer or answer.get("error"):
        return None, {"outcome": "Airflow holds no answer to the approval: nothing sent", "failure": True}
    who = answer.get("responded_by_user")
    if not isinstance(who, dict) or not who.get("id"):  # the timeout applied the default answer
        timeout = duration_words(workflow.approval.timeout)
        return None, {"outcome": f"no answer within {timeout}: nothing sent", "failure": False}
    name = who.get("name") or who["id"]
    if list(answer.get("chosen_options") or []) != [APPROVE_OPTION]:
        return None, {"outcome": f"rejected by {name}: nothing sent", "failure": False}
    if workflow.approval.approvers and who["id"] not in workflow.approval.approvers:
        return None, {
            "outcome": f"approved by {name}, who is not one of the approvers "
            f"({', '.join(workflow.approval.approvers)}): nothing sent",
            "failure": True,
        }
    return name, None
