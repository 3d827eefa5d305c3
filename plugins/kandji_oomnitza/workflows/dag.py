"""One DAG per workflow file: Oomnitza's Begin block (an asset watcher) → approval → preset → write-back.

    prepare ──► per_device[i].run_action ──► summary
    (one mapped instance per record: it asks for approval where the workflow requires one, then, only
    when Airflow's own human-in-the-loop record says a listed approver answered Approve, sends the
    action and writes back; see operator.py)

The tasks are thin: each hands what Airflow holds (the run's asset events, the watcher's state, the
tasks' results) to a plain function in tasks.py. Parsing stays cheap: only the workflow file is read;
hooks are imported inside the tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetWatcher, TriggerRule, dag, task, task_group

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import START_DATE, default_args
from kandji_oomnitza.common.notify import notify_words
from kandji_oomnitza.common.seal import unseal
from kandji_oomnitza.settings_files import SettingsFile, build_each, duration_words, scan
from kandji_oomnitza.workflows.config import WORKFLOWS, Workflow
from kandji_oomnitza.workflows.operator import ApprovedWorkflowActionOperator, WorkflowActionOperator
from kandji_oomnitza.workflows.state import CLAIM_PREFIX, SENT_PREFIX, STATE_KEY, sealed_under
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

if TYPE_CHECKING:  # the steps are imported when a task runs, not when the DAG file is parsed
    from kandji_oomnitza.workflows import tasks

DUPLICATE_WINDOW = timedelta(days=7)  # how far back a repeated event's first sending is looked for
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


# -- the tasks' Airflow side: what Airflow holds in, plain values out -----------------------------------
def _events(events: Any) -> list[tasks.EventView]:
    """Asset events as plain values; one that triggered this run has no ``created_dagruns`` of its own
    to read: it started this run."""
    from kandji_oomnitza.workflows import tasks

    return sorted(
        (
            tasks.EventView(e.timestamp, dict(e.extra or {}), bool(getattr(e, "created_dagruns", True)))
            for e in events
        ),
        key=lambda e: e.timestamp,
    )


def prepare_task(workflow: Workflow, asset: Asset, context: dict[str, Any]) -> list[tasks.Item]:
    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza.hooks.kandji import KandjiHook
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
    from kandji_oomnitza.workflows import tasks

    triggering = context.get("triggering_asset_events") or {}
    events = _events(triggering.get(asset, []))
    if not events:
        tasks.log.warning(
            "This run carries no event from the workflow's trigger (was it started by hand?): nothing to do."
        )
    elif workflow.write_back:  # before any entry is claimed: a failure here retries them all
        known = OomnitzaHook(workflow.trigger.connection).field_metadata("assets")
        if unknown := tasks.unknown_write_back_fields(workflow, known):
            raise AirflowFailException(
                f"write_back names {', '.join(unknown)}, which Oomnitza's assets do not have: create the field "
                "in Oomnitza (its external id must match) or fix the workflow file. Nothing was sent."
            )
    store = context["asset_state_store"][asset]
    earlier = (
        _events(context["inlet_events"][asset].after((events[0].timestamp - DUPLICATE_WINDOW).isoformat()))
        if events
        else []
    )
    claimed = {"run_id": context["run_id"], "at": datetime.now(UTC).isoformat(timespec="seconds")}
    state, forged = unseal(sealed_under(asset.name, STATE_KEY), store.get(STATE_KEY))
    if forged:  # then no entry is the watcher's: each is reported as not produced by it, none is claimed
        tasks.log.error(
            "The workflow's state in Airflow's asset state store is not the one its watcher wrote: %s. Nothing "
            "in this run's events is acted on. Either someone allowed to edit assets wrote it (SECURITY.md), or "
            "this worker and the triggerer seal with different keys: set the same [kandji_oomnitza] "
            "state_seal_key (or [core] fernet_key) on both.",
            forged,
        )
    prepared = tasks.prepare(
        workflow,
        events,
        state,
        earlier=earlier,
        kandji=KandjiHook(workflow.action.kandji_connection),
        claim=lambda key: store.set(CLAIM_PREFIX + key, claimed),
    )
    context["ti"].xcom_push(key=names.PROBLEMS, value=prepared.problems)
    context["ti"].xcom_push(key=names.DUPLICATES, value=prepared.duplicates)
    return prepared.items


def summary_task(workflow: Workflow, asset: Asset, items: list[tasks.Item] | None, context) -> dict[str, Any]:
    """Fails the run when a record could not be acted on, so it shows red in the grid."""
    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza.presets.handover import ActionResult
    from kandji_oomnitza.workflows import tasks

    ti = context["ti"]
    if items is None:  # prepare always returns a list: None means it failed
        raise AirflowFailException(
            "prepare did not finish (see its log): nothing was sent. The entries it had not claimed yet are "
            "sent again by the trigger after 15 minutes, and a new run tries once more."
        )
    indexes = list(range(len(items)))

    def pulled(key: str) -> list[Any]:
        if not indexes:
            return []
        values = ti.xcom_pull(task_ids=names.WORKFLOW_ACTION, map_indexes=indexes, key=key)
        values = values if isinstance(values, list) else [values]
        return values + [None] * (len(indexes) - len(values))

    store = context["asset_state_store"][asset]
    marks = [
        unseal(sealed_under(asset.name, SENT_PREFIX + key), store.get(SENT_PREFIX + key))[0]
        for key in (item["request"]["key"] for item in items)
    ]
    summary = tasks.summarize(
        workflow,
        context["dag"].dag_id,
        items,
        ti.xcom_pull(task_ids=names.PREPARE, key=names.PROBLEMS) or [],
        ti.xcom_pull(task_ids=names.PREPARE, key=names.DUPLICATES) or [],
        actions=[ActionResult.read(value) for value in pulled(names.RETURN_VALUE)],
        stopped=pulled(names.NOT_SENT),
        marks=[m if isinstance(m, dict) and m.get("run_id") == context["run_id"] else None for m in marks],
    )
    ti.xcom_push(key=names.SUMMARY, value=summary.to_xcom())
    if summary.failure:
        raise AirflowFailException(summary.failure)
    return summary.to_xcom()


# -- the DAG --------------------------------------------------------------------------------------------
def _doc(dag_id: str, workflow: Workflow, source: Path) -> str:
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
        doc_md=_doc(dag_id, workflow, source),
        default_args=default_args(retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=10)),
        on_failure_callback=_failure_notifier(workflow, dag_id),
    )
    def workflow_dag() -> None:
        @task(
            task_id=names.PREPARE, multiple_outputs=False, inlets=[asset], execution_timeout=PREPARE_TIMEOUT
        )
        def prepare(**context: Any) -> list[tasks.Item]:
            return prepare_task(workflow, asset, context)

        @task_group(group_id=names.PER_DEVICE)
        def per_device(subject: str, body: str, inputs: dict[str, Any], request: tasks.Request) -> None:
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
        def summary(items: list[tasks.Item] | None, **context: Any) -> dict[str, Any]:
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
