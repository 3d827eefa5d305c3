"""The messages a workflow's ``notify`` block sends (common/notify.py delivers them): a person must
approve (with the link to Airflow's Required Actions), or a run failed. One sentence, the counts, the
links; never a PIN, a token or the record's payload (the approval's subject names the device and the
action, nothing more)."""

from __future__ import annotations

from typing import Any

from kandji_oomnitza import names
from kandji_oomnitza.common.approval import required_actions_url
from kandji_oomnitza.common.notify import (
    Notice,
    context_run_id,
    counts_line,
    failure_reason,
    pulled_summary,
    run_url,
)
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.workflows.config import Workflow
from kandji_oomnitza.workflows.handover import WorkflowSummary


def workflow_label(workflow: Workflow, dag_id: str) -> str:
    return workflow.name or dag_id


def approval_waiting_notice(workflow: Workflow, context: dict[str, Any]) -> Notice:
    """A human-in-the-loop task's notifier context: the task (its rendered subject) and its instance."""
    task, ti = context["task"], context["ti"]
    dag_id = ti.dag_id
    who = ", ".join(workflow.approval.approvers) or "any user allowed to answer in Airflow"
    hours = workflow.approval.timeout.total_seconds() / 3600
    return Notice(
        title=f"{workflow_label(workflow, dag_id)}: approval needed",
        sentence=(
            f"{shorten(task.subject, 200)} waits for approval by {who}; without an answer within "
            f"{hours:g} h nothing is sent."
        ),
        details=[f"approve or reject: {required_actions_url(context)}", f"run: {run_url(dag_id, ti.run_id)}"],
        failure=False,
    )


def failure_notice(workflow: Workflow, dag_id: str, context: dict[str, Any]) -> Notice:
    """A workflow run failed: a record could not be acted on, or a step failed."""
    run_id = context_run_id(context)
    summary = WorkflowSummary.read(pulled_summary(context, names.WORKFLOW_SUMMARY, names.SUMMARY))
    label = workflow_label(workflow, dag_id)
    details = [counts_line(summary.counts())] if summary is not None else []
    reason = failure_reason(context, summary.failure if summary is not None else None)
    return Notice(
        title=f"{label}: run failed",
        sentence=f"{label} ({dag_id}) run {run_id} failed: {shorten(reason, 600)}",
        details=[*details, f"run: {run_url(dag_id, run_id)}"],
    )
