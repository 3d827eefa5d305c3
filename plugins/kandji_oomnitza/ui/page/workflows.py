"""The workflows beside the integrations: what each watches and does, its last runs, the approvals
waiting. Read from the workflow files, the metadata DB (runs, their summary XCom, open HITL requests)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from kandji_oomnitza import names
from kandji_oomnitza.settings_files import SettingsFile, duration_words, scan
from kandji_oomnitza.ui.page.overview import iso_or_none, run_summaries
from kandji_oomnitza.workflows.config import WORKFLOWS
from kandji_oomnitza.workflows.handover import WorkflowSummary

RUNS_SHOWN = 5


class WorkflowRun(BaseModel):
    run_id: str
    state: str | None
    started_at: str | None
    outcomes: list[str] | None  # one line per record, from the summary task (None: not published/hidden)
    airflow_url: str


class Approval(BaseModel):
    run_id: str
    subject: str
    since: str | None
    approvers: list[str]
    airflow_url: str


class WorkflowCard(BaseModel):
    id: str
    file: str
    valid: bool
    error: str | None = None
    name: str | None = None
    enabled: bool | None = None
    paused: bool | None = None
    in_airflow: bool = False
    trigger: str | None = None
    action: str | None = None
    inputs: dict[str, Any] = {}
    approval: str | None = None
    write_back: dict[str, Any] = {}
    last_poll: dict[str, Any] | None = None  # the watcher's last poll: when, ok, matching, or its error
    last_poll_hidden: bool = False  # the user may not read assets (the poll is in the asset's state store)
    runs: list[WorkflowRun] = []
    approvals_waiting: list[Approval] = []
    approvals_hidden: bool = False  # the user may not read the DAG's human-in-the-loop details


def read_workflow_files() -> list[SettingsFile]:
    return scan(WORKFLOWS)


def _outcomes(value: Any) -> list[str] | None:
    summary = WorkflowSummary.read(value)
    if summary is None:
        return None
    return [f"{r.serial_number or r.record_id}: {r.outcome}" for r in summary.records]


def _runs(session: Session, dag_id: str, show_outcomes: bool) -> list[WorkflowRun]:
    from airflow.models.dagrun import DagRun

    runs = session.scalars(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(RUNS_SHOWN)
    ).all()
    summaries = (
        run_summaries(session, dag_id, [r.run_id for r in runs], names.WORKFLOW_SUMMARY)
        if show_outcomes and runs
        else {}
    )
    return [
        WorkflowRun(
            run_id=run.run_id,
            state=str(run.state) if run.state else None,
            started_at=iso_or_none(run.start_date or run.queued_at),
            outcomes=_outcomes(summaries.get(run.run_id)),
            airflow_url=f"dags/{quote(dag_id)}/runs/{quote(run.run_id, safe='')}",
        )
        for run in runs
    ]


def _waiting(session: Session, dag_id: str) -> list[Approval]:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState

    rows = session.execute(
        select(HITLDetail, TaskInstance)
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.task_id == names.WORKFLOW_ACTION,  # it asks for the approval, then acts
            TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            HITLDetail.responded_at.is_(None),
        )
        .order_by(HITLDetail.created_at)
    ).all()
    return [
        Approval(
            run_id=ti.run_id,
            subject=detail.subject,
            since=iso_or_none(detail.created_at),
            approvers=[a.get("name") or a.get("id") for a in detail.assignees or []],
            airflow_url=(
                f"dags/{quote(dag_id)}/runs/{quote(ti.run_id, safe='')}/tasks/{quote(names.WORKFLOW_ACTION)}"
                f"/mapped/{ti.map_index}/required_actions"
            ),
        )
        for detail, ti in rows
    ]


def _last_poll(session: Session, dag_id: str) -> dict[str, Any] | None:
    import json

    from airflow.models.asset import AssetModel
    from airflow.models.asset_state_store import AssetStateStoreModel

    from kandji_oomnitza.workflows.state import LAST_POLL_KEY

    value = session.scalar(
        select(AssetStateStoreModel.value)
        .join(AssetModel, AssetModel.id == AssetStateStoreModel.asset_id)
        .where(AssetModel.name == dag_id, AssetStateStoreModel.key == LAST_POLL_KEY)
    )
    return json.loads(value) if value else None


def card(
    session: Session,
    entry: SettingsFile,
    *,
    dag_model: Any | None,
    show_outcomes: bool,
    show_approvals: bool,
    show_last_poll: bool,
) -> WorkflowCard:
    """One workflow as the page shows it; each part only when the user may read its data in Airflow."""
    base = {"id": entry.dag_id, "file": entry.path.name}
    workflow = entry.model
    if workflow is None:
        return WorkflowCard(**base, valid=False, error=entry.error)
    preset = workflow.action.definition
    timeout = duration_words(workflow.approval.timeout)
    approval = (
        f"required: {', '.join(workflow.approval.approvers) or 'anyone allowed to act on this DAG'}; "
        f"no answer within {timeout} sends nothing"
        if workflow.approval_required
        else "none: sent as soon as a record matches"
    )
    if workflow.unattended_erase:
        approval = "NONE: every matching device is ERASED at once, with nobody confirming (unattended_erase)"
    return WorkflowCard(
        **base,
        valid=True,
        name=workflow.name or entry.dag_id,
        enabled=workflow.enabled,
        paused=dag_model.is_paused if dag_model is not None else None,
        in_airflow=dag_model is not None,
        trigger=(
            f"Oomnitza {workflow.trigger.object} where {workflow.trigger.describe()} "
            f"(every {duration_words(workflow.trigger.poll_interval)}, {workflow.trigger.connection})"
        ),
        action=f"{preset.title} on the device in {workflow.action.serial_field}",
        inputs=dict(workflow.action.inputs),
        approval=approval,
        write_back=dict(workflow.write_back),
        runs=_runs(session, entry.dag_id, show_outcomes) if dag_model is not None else [],
        approvals_waiting=_waiting(session, entry.dag_id) if dag_model is not None and show_approvals else [],
        approvals_hidden=not show_approvals,
        last_poll=_last_poll(session, entry.dag_id) if workflow.enabled and show_last_poll else None,
        last_poll_hidden=not show_last_poll,
    )
