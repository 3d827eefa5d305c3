"""A workflow DAG's documentation (its Docs tab): what the file watches and does, in words, from the file."""

from __future__ import annotations

from pathlib import Path

from kandji_oomnitza.common.notify import notify_words
from kandji_oomnitza.settings_files import duration_words
from kandji_oomnitza.workflows.config import Workflow


# -- the DAG --------------------------------------------------------------------------------------------
def dag_doc(dag_id: str, workflow: Workflow, source: Path) -> str:
    preset = workflow.action.definition
    approval = (
        f"required ({', '.join(workflow.approval.approvers) or 'anyone allowed to act on this DAG'}; "
        f"no answer within {duration_words(workflow.approval.timeout)} sends nothing)"
        if workflow.approval_required
        else "none: the action is sent as soon as a record matches"
    )
    if workflow.unattended_erase:
        approval = (
            "**none: every matching device is erased at once, with nobody confirming** (unattended_erase)"
        )
    inputs = "\n".join(f"  - `{k}`: {v}" for k, v in workflow.action.inputs.items()) or "  - none"
    write_back = "\n".join(f"  - `{k}`: {v}" for k, v in workflow.write_back.items()) or "  - none"
    return f"""
# {workflow.name or dag_id}

{workflow.description}

Defined by `{source.name}`. **{"Enabled" if workflow.enabled else "Disabled (enabled: false): Oomnitza is not polled"}.**

- When an Oomnitza asset starts matching `{workflow.trigger.describe()}` (polled every
  {duration_words(workflow.trigger.poll_interval)} through `{workflow.trigger.connection}`), one run starts for it.
- Action: **{preset.title}** on the device whose serial number is in `{workflow.action.serial_field}`; inputs:
{inputs}
- Approval: {approval}
- Write-back:
{write_back}
- Notifications: {notify_words(workflow.notify)}

Each record starts one run per entry into the condition (see the README, "Workflows"). The approval
shows the asset, the Kandji device resolved for its serial number, the action and its inputs.
"""
