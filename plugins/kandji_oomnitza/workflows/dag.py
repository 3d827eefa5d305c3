"""One DAG per workflow file: Oomnitza's Begin block (an asset watcher) → approval → preset → write-back.

    prepare ──► per_device[i].run_action ──► summary
    (one mapped instance per record: it asks for approval where the workflow requires one, then, only
    when Airflow's own human-in-the-loop record says a listed approver answered Approve, sends the
    action and writes back; see operator.py)

This module only builds the DAG. Each task hands what Airflow holds to its glue in ``tasks.py``, which
calls the plain steps (``steps.py``); the run_action tasks are ``operator.py``'s; the DAG's docs are
``docs.py``. Parsing stays cheap: only the workflow file is read; hooks are imported inside the tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetWatcher, TriggerRule, dag, task, task_group

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import START_DATE, default_args
from kandji_oomnitza.settings_files import SettingsFile, build_each, scan
from kandji_oomnitza.workflows.config import WORKFLOWS, Workflow
from kandji_oomnitza.workflows.docs import dag_doc
from kandji_oomnitza.workflows.operator import ApprovedWorkflowActionOperator, WorkflowActionOperator
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

if TYPE_CHECKING:  # the steps are imported when a task runs, not when the DAG file is parsed
    from kandji_oomnitza.workflows import steps

# prepare resolves each record's device in Kandji (a lookup each) and reads Oomnitza's field metadata;
# run_action sends one command and watches its delivery (the wait for an answer is not counted: the task
# is parked, not running); summary reads XComs.
PREPARE_TIMEOUT = timedelta(minutes=30)
ACTION_TIMEOUT = timedelta(minutes=10)
SUMMARY_TIMEOUT = timedelta(minutes=10)


def workflow_asset(stem: str, workflow: Workflow, shared_filters: list[str | None] | None = None) -> Asset:
    """The workflow's asset and its watcher; ``shared_filters``: the reads its read group shares."""
    dag_id = names.workflow_dag_id(stem)
    watchers = []
    if workflow.enabled:
        trigger = OomnitzaRecordsTrigger(
            workflow=dag_id,
            trigger=workflow.trigger.model_dump(mode="json", by_alias=True, exclude_none=True),
            serial_field=workflow.action.serial_field,
            record_fields=workflow.record_fields,
            shared_filters=shared_filters,
        )
        watchers.append(AssetWatcher(name=f"oomnitza_{stem}", trigger=trigger))
    return Asset(name=dag_id, uri=f"kandji-workflow://{stem}", watchers=watchers)


def _failure_notifier(workflow: Workflow, dag_id: str) -> Any:
    if workflow.notify is None or not workflow.notify.on_failure:
        return None
    from kandji_oomnitza.common.notify import SettingsNotifier
    from kandji_oomnitza.workflows.notices import failure_notice

    return SettingsNotifier(workflow.notify.on_failure, functools.partial(failure_notice, workflow, dag_id))


def _approval_notifiers(workflow: Workflow) -> list[Any]:
    """Airflow's human-in-the-loop notifiers: called once, when the task starts waiting for the answer."""
    if workflow.notify is None or not workflow.notify.on_approval_waiting:
        return []
    from kandji_oomnitza.common.notify import SettingsNotifier
    from kandji_oomnitza.workflows.notices import approval_waiting_notice

    return [
        SettingsNotifier(
            workflow.notify.on_approval_waiting, functools.partial(approval_waiting_notice, workflow)
        )
    ]


def build_workflow_dag(
    stem: str,
    workflow: Workflow,
    source: Path,
    asset_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    shared_filters: list[str | None] | None = None,
    register: bool = True,
) -> DAG:
    """``asset_record``: how Get Asset Details maps a device (given by the DAG file; see presets);
    ``shared_filters``: the reads the workflow's watcher shares with the others of its read group;
    ``register=False`` builds it only to see that it can be (the file-errors DAG file)."""
    dag_id = names.workflow_dag_id(stem)
    asset = workflow_asset(stem, workflow, shared_filters)
    preset = workflow.action.definition

    @dag(
        dag_id=dag_id,
        auto_register=register,
        dag_display_name=workflow.name or dag_id,
        description=f"{workflow.trigger.describe()} → {preset.title}",
        schedule=[asset],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=16,
        tags=["kandji", "workflow", *workflow.tags, *([] if workflow.enabled else ["disabled"])],
        doc_md=dag_doc(dag_id, workflow, source),
        default_args=default_args(retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10)),
        on_failure_callback=_failure_notifier(workflow, dag_id),
    )
    def workflow_dag() -> None:
        @task(
            task_id=names.PREPARE, multiple_outputs=False, inlets=[asset], execution_timeout=PREPARE_TIMEOUT
        )
        def prepare(**context: Any) -> list[steps.Item]:
            from kandji_oomnitza.workflows.tasks import prepare_task

            return prepare_task(workflow, asset, context)

        @task_group(group_id=names.PER_DEVICE)
        def per_device(subject: str, body: str, inputs: dict[str, Any], request: steps.Request) -> None:
            common: dict[str, Any] = {
                "task_id": names.RUN_ACTION,
                "task_display_name": preset.title,
                "preset": preset,
                "workflow": workflow,
                "asset": asset,
                "request": request,
                "inputs": inputs,
                "asset_record": asset_record if preset.action is None else None,
                "retries": 0,  # a device action is never resent by Airflow
                "execution_timeout": ACTION_TIMEOUT,
            }
            if workflow.approval_required:
                ApprovedWorkflowActionOperator(
                    subject=subject, body=body, notifiers=_approval_notifiers(workflow), **common
                )
            else:
                WorkflowActionOperator(**common)

        @task(
            task_id=names.WORKFLOW_SUMMARY,
            multiple_outputs=False,
            trigger_rule=TriggerRule.ALL_DONE,
            retries=0,
            inlets=[asset],
            execution_timeout=SUMMARY_TIMEOUT,
            show_return_value_in_logs=False,  # each record's line is logged already
        )
        def summary(items: list[steps.Item] | None, **context: Any) -> dict[str, Any]:
            from kandji_oomnitza.workflows.tasks import summary_task

            return summary_task(workflow, asset, items, context)

        items = prepare()
        # TaskFlow passes the XComArg; the decorated function's signature types the value it resolves to.
        summary(items).set_upstream(per_device.expand_kwargs(items))  # type: ignore[arg-type]

    return workflow_dag()


def build_entry(
    entry: SettingsFile,
    asset_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    shared_filters: list[str | None] | None = None,
    register: bool = True,
) -> DAG:
    """The DAG of one valid workflow file."""
    if entry.model is None:
        raise ValueError(f"{entry.path}: not a valid workflow file ({entry.error})")
    return build_workflow_dag(
        entry.path.stem, entry.model, entry.path, asset_record, shared_filters, register
    )


def build_all(
    folder: Path | None = None, asset_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> dict[str, DAG]:
    """A DAG per valid workflow file, each built on its own; invalid ones, and any whose DAG cannot be
    built, are reported by ``dags/kandji_workflow_file_errors.py``. The enabled workflows that watch the
    same fields the same way share one read per poll."""
    from kandji_oomnitza.workflows.config import shared_filters

    entries = scan(WORKFLOWS, folder)
    groups: dict[Any, list[Any]] = {}
    for entry in entries:
        if entry.model is not None and entry.model.enabled:
            groups.setdefault(entry.model.trigger.read_group(), []).append(entry.model.trigger)
    reads = {group: shared_filters(triggers) for group, triggers in groups.items()}
    dags, _ = build_each(
        WORKFLOWS,
        entries,
        lambda entry, register: build_entry(
            entry, asset_record, reads.get(entry.model.trigger.read_group()), register
        ),
    )
    return dags
