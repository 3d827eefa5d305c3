"""One DAG per workflow file: Oomnitza's Begin block (an asset watcher) → approval → preset → write-back.

    prepare ──► per_device[i]: approve ─► run_action ─► write_back ──► summary
    (one mapped group instance per record; without approval the group starts at run_action)

Parsing stays cheap: only the workflow file is read; hooks are imported inside the tasks.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, TriggerRule, dag, task, task_group

from kandji_oomnitza.operators.kandji import KandjiDeviceActionOperator
from kandji_oomnitza.triggers.oomnitza_records import OomnitzaRecordsTrigger
from kandji_oomnitza.workflow_config import (
    Workflow,
    WorkflowFileError,
    render,
    scan,
    serial_is_valid,
    valid_input,
)
from kandji_oomnitza.workflow_state import CLAIM_PREFIX, SENT_PREFIX, first_sent_before

log = logging.getLogger(__name__)
GROUP = "per_device"
NOT_SENT = "not_sent"  # run_action's XCom when its last checks stopped it (the reason)
APPROVE, ACT, WRITE_BACK = f"{GROUP}.approve", f"{GROUP}.run_action", f"{GROUP}.write_back"
DUPLICATE_WINDOW = timedelta(days=7)  # how far back a repeated event's first sending is looked for


def workflow_asset(stem: str, workflow: Workflow) -> Asset:
    watchers = []
    if workflow.enabled:
        trigger = OomnitzaRecordsTrigger(
            workflow=f"kandji_workflow_{stem}",
            trigger=workflow.trigger.model_dump(mode="json", by_alias=True, exclude_none=True),
            serial_field=workflow.action.serial_field,
            record_fields=workflow.record_fields,
        )
        watchers.append(AssetWatcher(name=f"oomnitza_{stem}", trigger=trigger))
    return Asset(name=f"kandji_workflow_{stem}", uri=f"kandji-workflow://{stem}", watchers=watchers)


# -- prepare: which records this run acts on, and on which devices --------------------------------------
def _events_of_run(context: dict[str, Any], asset: Asset) -> list[Any]:
    events = (
        context["triggering_asset_events"].get(asset, []) if context.get("triggering_asset_events") else []
    )
    return sorted(events, key=lambda e: e.timestamp)


def _sent_before(context: dict[str, Any], asset: Asset, event: Any, key: str) -> Any | None:
    """The time an earlier event of the same entry was sent (a repeat after a crash), if any."""
    since = (event.timestamp - DUPLICATE_WINDOW).isoformat()
    # Only events that started a run count: one fired while the DAG was paused started none, and the
    # entry must not wait for it for ever.
    known = [
        (e.timestamp, ((e.extra or {}).get("payload") or {}).get("key"))
        for e in context["inlet_events"][asset].after(since)
        if e.created_dagruns
    ]
    return first_sent_before(key, event.timestamp, known)


def render_inputs(workflow: Workflow, fields: dict[str, Any], serial: str) -> dict[str, Any]:
    """The preset's inputs for this record, checked as the preset DAG's trigger form checks them."""
    preset = workflow.action.definition
    values: dict[str, Any] = {}
    for name, spec in preset.params.items():
        if name == "confirm_serial_number":
            values[name] = serial
            continue
        value = workflow.action.inputs.get(name, spec.get("default"))
        if isinstance(value, str):
            value = " ".join(render(value, fields).split()) or None
        values[name] = valid_input(preset, name, value)
    return {"serial_number": serial, **values}


def _md(value: Any) -> str:
    """A record's value as literal text in the approval's Markdown: an inline code span, so whoever can
    edit an asset in Oomnitza cannot put a link (even a bare URL, which GitHub-style Markdown turns into
    one), an image or formatting in front of the approver."""
    if value in (None, ""):
        return "(none)"
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _body(workflow: Workflow, request: dict[str, Any]) -> str:
    preset = workflow.action.definition
    device = request["device"]
    shown = {
        k: v for k, v in request["inputs"].items() if k not in ("serial_number", "confirm_serial_number")
    }
    inputs = "\n".join(f"- {k}: {_md(v)}" for k, v in shown.items()) or "- none"
    fields = "\n".join(f"- {k}: {_md(v)}" for k, v in request["record"].items())
    return f"""**{preset.title}** on **{_md(request["serial_number"])}** because the Oomnitza asset now matches
{_md(workflow.trigger.describe())}.

**Oomnitza asset** {_md(request["record_id"])}
{fields}

**Kandji device** (resolved now from the serial number, exact match)
- name: {_md(device.get("device_name"))}
- platform / model: {_md(device.get("platform"))} / {_md(device.get("model"))}
- user: {_md(device.get("user"))}
- device id: {_md(device.get("device_id"))}

**Action inputs**
{inputs}

Approve to send it once. Reject, or no answer within the timeout, sends nothing."""


def _resolve(workflow: Workflow, payload: dict[str, Any], kandji: Any) -> dict[str, Any]:
    """One record → the approval's subject and body and the action's inputs; raises ValueError with the
    reason when nothing may be sent for it."""
    from kandji_oomnitza.hooks.base import ApiError

    serial = payload.get("serial_number")
    if not serial_is_valid(serial):
        raise ValueError(
            f"the asset's {workflow.action.serial_field} is {serial!r}, not a serial number: nothing sent"
        )
    serial = serial.upper()
    try:
        device = kandji.find_device_by_serial(serial)
    except ApiError as exc:
        raise ValueError(f"{exc} Nothing was sent.") from None
    preset = workflow.action.definition
    if problem := preset.platform_problem(device):
        raise ValueError(problem)
    try:
        inputs = render_inputs(workflow, payload.get("fields") or {}, serial)
    except ValueError as exc:
        raise ValueError(f"{exc}. Nothing was sent.") from None
    user = device.get("user")
    request = {
        "key": payload["key"],
        "record_id": payload["record_id"],
        "serial_number": serial,
        "record": payload.get("fields") or {},
        "device": {
            "device_id": device.get("device_id"),
            "device_name": device.get("device_name"),
            "platform": device.get("platform"),
            "model": device.get("model"),
            "user": user.get("email") if isinstance(user, dict) else user,
        },
        "inputs": inputs,
    }
    return {
        "subject": f"{preset.title} on {serial} ({device.get('device_name')})?",
        "body": _body(workflow, request),
        "inputs": inputs,
        "request": request,
    }


def prepare_records(workflow: Workflow, asset: Asset, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Claim this run's entries (each entry is acted on by the run of its first event only), then resolve
    each record's device in Kandji. Problems are collected, never sent."""
    from kandji_oomnitza.hooks.kandji import KandjiHook

    store = context["asset_state_store"][asset]
    requests, problems, duplicates = [], [], []
    events = _events_of_run(context, asset)
    if not events:
        log.warning(
            "This run carries no event from the workflow's trigger (was it started by hand?): nothing to do."
        )
    if events and workflow.write_back:
        _check_write_back_fields(workflow)  # before any entry is claimed: a failure here retries them all
    kandji = KandjiHook()
    claimed = {"run_id": context["run_id"], "at": datetime.now(UTC).isoformat(timespec="seconds")}
    for event in events:
        payload = (event.extra or {}).get("payload") or {}
        key = payload.get("key")
        if not key:
            problems.append({"record_id": None, "serial_number": None,
                             "problem": f"an asset event of {event.timestamp} was not sent by this workflow's trigger; ignored"})  # fmt: skip
            continue
        store.set(CLAIM_PREFIX + key, claimed)  # a repeat is claimed too: the trigger stops resending it
        if first := _sent_before(context, asset, event, key):
            log.info("Entry %s was first sent at %s; that event's run acts on it, not this one", key, first)
            duplicates.append({"key": key, "record_id": payload["record_id"], "first_sent": str(first)})
            continue
        try:
            requests.append(_resolve(workflow, payload, kandji))
            device = requests[-1]["request"]["device"]
            log.info(
                "Asset %s (serial %s) is Kandji device %s (%s, %s): %s",
                payload["record_id"],
                payload.get("serial_number"),
                device["device_name"],
                device["platform"],
                device["device_id"],
                "asking for approval" if workflow.approval_required else "no approval needed; sending",
            )
        except ValueError as exc:
            problems.append({"key": key, "record_id": payload["record_id"],
                             "serial_number": payload.get("serial_number"), "problem": str(exc)})  # fmt: skip
    for problem in problems:
        log.error("Record %s: %s", problem.get("record_id"), problem["problem"])
    log.info("%d record(s) to act on, %d with a problem, %d repeated event(s)",
             len(requests), len(problems), len(duplicates))  # fmt: skip
    context["ti"].xcom_push(key="problems", value=problems)
    context["ti"].xcom_push(key="duplicates", value=duplicates)
    return requests


def _check_write_back_fields(workflow: Workflow) -> None:
    """Before anything is sent: every write-back field exists in Oomnitza."""
    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    known = OomnitzaHook(workflow.trigger.connection).field_metadata("assets")
    if unknown := [name for name in workflow.write_back if name not in known]:
        raise AirflowFailException(
            f"write_back names {', '.join(unknown)}, which Oomnitza's assets do not have: create the field in "
            "Oomnitza (its external id must match) or fix the workflow file. Nothing was sent."
        )


class WorkflowActionOperator(KandjiDeviceActionOperator):
    """The preset's operator, with the workflow's last checks: right before sending, the asset still
    matches and still holds the serial number that was approved, and nothing was sent for this entry yet
    (a cleared run, a repeated or forged event); then ``sent:<entry>`` is written, before the call."""

    template_fields = ("inputs", "request")

    def __init__(self, *, workflow: Workflow, asset: Asset, request: Any, **kwargs: Any) -> None:
        super().__init__(inlets=[asset], **kwargs)
        self.workflow = workflow
        self.asset = asset
        self.request = request

    def before_sending(self, context, device: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from kandji_oomnitza.hooks.base import ApiError
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        request, store = self.request, context["asset_state_store"][self.asset]
        key = request["key"]

        def not_sent(reason: str) -> AirflowSkipException:
            context["ti"].xcom_push(key=NOT_SENT, value=reason)  # the summary's line for this record
            self.log.warning("%s", reason)
            return AirflowSkipException(reason)

        if sent := store.get(SENT_PREFIX + key):
            raise not_sent(
                f"entry {key} was already sent (by run {sent.get('run_id')} at {sent.get('at')}); "
                "it is not sent twice"
            )
        if device.get("device_id") != request["device"]["device_id"]:
            raise AirflowFailException(
                f"Kandji now resolves {request['serial_number']} to device {device.get('device_id')}, not the "
                f"{request['device']['device_id']} that was approved. Nothing was sent."
            )
        try:
            record = OomnitzaHook(self.workflow.trigger.connection).get_json(
                f"api/v3/assets/{quote(str(request['record_id']), safe='')}"
            )
        except ApiError as exc:
            raise AirflowFailException(
                f"The asset could not be read again before sending: {exc} Nothing was sent."
            ) from None
        serial = str((record or {}).get(self.workflow.action.serial_field) or "").upper()
        if (
            not isinstance(record, dict)
            or not self.workflow.trigger.holds(record)
            or serial != request["serial_number"]
        ):
            raise not_sent(
                f"the asset no longer matches {self.workflow.trigger.describe()} with serial number "
                f"{request['serial_number']}: nothing sent"
            )
        store.set(
            SENT_PREFIX + key,
            {"run_id": context["run_id"], "at": datetime.now(UTC).isoformat(timespec="seconds")},
        )


# -- after the action --------------------------------------------------------------------------------
def write_back_record(
    workflow: Workflow, request: dict[str, Any], sent: dict[str, Any], context
) -> dict[str, Any]:
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    ti = context["ti"]
    approval = (
        ti.xcom_pull(task_ids=APPROVE, map_indexes=ti.map_index) if workflow.approval_required else None
    )
    approver = ((approval or {}).get("responded_by_user") or {}).get("name", "")
    values = {
        **request["record"],
        "action": workflow.action.definition.title.removeprefix("Kandji "),
        "result": sent.get("result", ""),
        "sent_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial_number_sent": request["serial_number"],
        "approved_by": approver,
    }
    changes = {
        name: render(v, values) if isinstance(v, str) else v for name, v in workflow.write_back.items()
    }
    OomnitzaHook(workflow.trigger.connection).update_record("assets", request["record_id"], changes)
    log.info("Set on asset %s: %s", request["record_id"], changes)
    return changes


def _outcome(
    workflow: Workflow, request: dict[str, Any], answer: Any, action: Any, wrote: Any
) -> tuple[dict, bool]:
    """What happened to one record, and whether that is a failure of the run."""
    line = {
        "record_id": request["record_id"],
        "serial_number": request["serial_number"],
        "entry": request["key"],
    }
    if workflow.approval_required and not answer:
        return {**line, "outcome": "approval failed or not answered: nothing sent"}, True
    if workflow.approval_required and answer.get("chosen_options") != ["Approve"]:
        who = (answer.get("responded_by_user") or {}).get("name")
        timeout = timedelta(seconds=workflow.approval.timeout)
        said = f"rejected by {who}: nothing sent" if who else f"no answer within {timeout}: nothing sent"
        return {**line, "outcome": said}, False
    if not action:
        return {**line, "outcome": "the action failed (see per_device.run_action's log)"}, True
    if isinstance(action, str):  # run_action's last checks stopped it: the reason
        return {**line, "outcome": action}, False
    line.update(
        outcome=f"{action.get('result')} ({workflow.action.definition.title})",
        delivery=action.get("delivery"),
    )
    if workflow.write_back:
        line["write_back"] = wrote or "failed (see per_device.write_back's log)"
        return line, not wrote
    return line, False


def summarize(workflow: Workflow, requests: list[dict[str, Any]] | None, context) -> dict[str, Any]:
    """One line per record: sent, rejected, timed out, or why not. Fails the run when a record could not
    be acted on, so it shows red in the grid."""
    from airflow.sdk.exceptions import AirflowFailException

    ti = context["ti"]
    if requests is None:  # prepare always returns a list: None means it failed
        raise AirflowFailException(
            "prepare did not finish (see its log): nothing was sent. The entries it had not claimed yet are "
            "sent again by the trigger after 15 minutes, and a new run tries once more."
        )
    problems = ti.xcom_pull(task_ids="prepare", key="problems") or []
    duplicates = ti.xcom_pull(task_ids="prepare", key="duplicates") or []
    indexes = list(range(len(requests)))

    def pulled(task_id: str, wanted: bool = True, key: str = "return_value") -> list[Any]:
        if not indexes or not wanted:
            return [None] * len(indexes)
        values = ti.xcom_pull(task_ids=task_id, map_indexes=indexes, key=key)
        values = values if isinstance(values, list) else [values]
        return values + [None] * (len(indexes) - len(values))

    approvals = pulled(APPROVE, workflow.approval_required)
    actions, written = pulled(ACT), pulled(WRITE_BACK, bool(workflow.write_back))
    stopped = pulled(ACT, key=NOT_SENT)
    records, failed = [], []
    for i, item in enumerate(requests):
        line, bad = _outcome(workflow, item["request"], approvals[i], actions[i] or stopped[i], written[i])
        records.append(line)
        if bad:
            failed.append(line)
    for problem in problems:
        records.append({**problem, "outcome": problem["problem"]})
        failed.append(problem)
    for line in records:
        log.info("%s (%s): %s", line.get("serial_number"), line.get("record_id"), line["outcome"])
    done = ("sent", "already done")
    summary = {
        "workflow": context["dag"].dag_id,
        "records": records,
        "sent": sum(1 for r in records if str(r["outcome"]).startswith(done)),
        "not_sent": sum(1 for r in records if not str(r["outcome"]).startswith(done)),
        "repeated_events": len(duplicates),
    }
    ti.xcom_push(key="summary", value=summary)
    if failed:
        raise AirflowFailException(
            f"{len(failed)} record(s) could not be acted on: "
            + "; ".join(f"{f.get('serial_number')}: {f.get('outcome') or f.get('problem')}" for f in failed)
        )
    return summary


# -- the DAG ----------------------------------------------------------------------------------------
def _doc(dag_id: str, workflow: Workflow, source: Path) -> str:
    preset = workflow.action.definition
    approval = (
        f"required ({', '.join(workflow.approval.approvers) or 'anyone allowed to act on this DAG'}; "
        f"no answer within {timedelta(seconds=workflow.approval.timeout)} sends nothing)"
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
  {timedelta(seconds=workflow.trigger.poll_interval)} through `{workflow.trigger.connection}`), one run starts for it.
- Action: **{preset.title}** on the device whose serial number is in `{workflow.action.serial_field}`; inputs:
{inputs}
- Approval: {approval}
- Write-back:
{write_back}

Each record starts one run per entry into the condition (see the README, "Workflows"). The approval
shows the asset, the Kandji device resolved for its serial number, the action and its inputs.
"""


def build_workflow_dag(stem: str, workflow: Workflow, source: Path) -> DAG:
    dag_id = f"kandji_workflow_{stem}"
    asset = workflow_asset(stem, workflow)
    preset = workflow.action.definition

    @dag(
        dag_id=dag_id,
        dag_display_name=workflow.name or dag_id,
        description=f"{workflow.trigger.describe()} → {preset.title}",
        schedule=[asset],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=16,
        tags=["kandji", "workflow", *workflow.tags, *([] if workflow.enabled else ["disabled"])],
        doc_md=_doc(dag_id, workflow, source),
        default_args={
            "owner": "it-ops",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
        },
    )
    def workflow_dag() -> None:
        @task(inlets=[asset])
        def prepare(**context: Any) -> list[dict[str, Any]]:
            return prepare_records(workflow, asset, context)

        @task(retries=3)
        def write_back(request: dict[str, Any], sent: dict[str, Any], **context: Any) -> dict[str, Any]:
            return write_back_record(workflow, request, sent, context)

        @task_group(group_id=GROUP)
        def per_device(subject: str, body: str, inputs: dict[str, Any], request: dict[str, Any]) -> None:
            act = WorkflowActionOperator(
                task_id="run_action",
                task_display_name=preset.title,
                preset=preset,
                workflow=workflow,
                asset=asset,
                request=request,
                inputs=inputs,
                approval_task_id=APPROVE if workflow.approval_required else None,
                retries=0,  # a device action is never resent by Airflow
            )
            if workflow.approval_required:
                from airflow.providers.standard.operators.hitl import ApprovalOperator

                approvers = [{"id": user, "name": user} for user in workflow.approval.approvers] or None
                approve = ApprovalOperator(
                    task_id="approve",
                    subject=subject,
                    body=body,
                    defaults="Reject",
                    assigned_users=approvers,
                    response_timeout=timedelta(seconds=workflow.approval.timeout),
                    retries=0,
                )
                approve >> act
            if workflow.write_back:
                write_back(request, act.output)

        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
        def summary(requests: list[dict[str, Any]] | None, **context: Any) -> dict[str, Any]:
            return summarize(workflow, requests, context)

        requests = prepare()
        summary(requests).set_upstream(per_device.expand_kwargs(requests))

    return workflow_dag()


def build_all(folder: Path) -> dict[str, DAG]:
    """A DAG per valid workflow file; invalid ones are reported by ``dags/kandji_workflow_file_errors.py``."""
    return {
        entry.dag_id: build_workflow_dag(entry.path.stem, entry.workflow, entry.path)
        for entry in scan(folder)
        if entry.workflow is not None
    }


def raise_for_invalid_files(folder: Path) -> None:
    problems = [entry.error for entry in scan(folder) if entry.error]
    if problems:
        raise WorkflowFileError(
            f"{len(problems)} workflow file(s) are invalid; their DAGs are not loaded until they are fixed "
            "(every other workflow runs as usual).\n" + "\n".join(problems)
        )
