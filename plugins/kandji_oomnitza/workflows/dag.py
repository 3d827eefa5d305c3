"""One DAG per workflow file: Oomnitza's Begin block (an asset watcher) → approval → preset → write-back.

    prepare ──► per_device[i].run_action ──► summary
    (one mapped instance per record: it asks for approval where the workflow requires one, then, only
    when Airflow's own human-in-the-loop record says a listed approver answered Approve, sends the
    action and writes back)

The approval and the action are one task on purpose: Airflow hands its record of the answer (who, and
which option, as its API server authenticated them) only to the task that asked, when it resumes it;
that record is the one proof of approval no other user or task can write. XComs can be written, and task
states set, by anyone allowed to edit the DAG's task instances; marking a task success, clearing one or
editing an XCom therefore never sends anything here.

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
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Asset, AssetWatcher, TriggerRule, dag, task, task_group

from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator
from kandji_oomnitza.settings_files import WORKFLOWS, scan
from kandji_oomnitza.workflows.config import (
    Workflow,
    render,
    serial_is_valid,
    valid_input,
)
from kandji_oomnitza.workflows.state import (
    CLAIM_PREFIX,
    SENT_PREFIX,
    STATE_KEY,
    authentic,
    entries_of,
    first_sent_before,
)
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

log = logging.getLogger(__name__)
GROUP = "per_device"
NOT_SENT = "not_sent"  # run_action's XCom when nothing was sent: {"outcome": why, "failure": bool}
ACT = f"{GROUP}.run_action"
APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"
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


def _watcher_entries(event: Any, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The entries of an asset event that the workflow's watcher produced (see ``authentic``)."""
    extra = event.extra or {}
    if extra.get("from_trigger") is not True:
        return []
    return [entry for entry in entries_of(extra.get("payload")) if authentic(state, entry)]


def _sent_before(
    context: dict[str, Any], asset: Asset, event: Any, key: str, state: dict[str, Any] | None
) -> Any | None:
    """The time an earlier event of the same entry was sent (a repeat after a crash), if any."""
    since = (event.timestamp - DUPLICATE_WINDOW).isoformat()
    # Only the watcher's events that started a run count: one fired while the DAG was paused started
    # none (the entry must not wait for it for ever), and a forged one must not swallow the real one.
    known = [
        (e.timestamp, entry["key"])
        for e in context["inlet_events"][asset].after(since)
        if e.created_dagruns
        for entry in _watcher_entries(e, state)
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
    each record's device in Kandji. Only entries the watcher produced are claimed: every entry is checked
    against the watcher's own state (its key and nonce) first. Problems are collected, never sent."""
    from kandji_oomnitza.hooks.kandji import KandjiHook

    store = context["asset_state_store"][asset]
    state = store.get(STATE_KEY)
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
        payload = (event.extra or {}).get("payload")
        accepted = _watcher_entries(event, state)
        for entry in entries_of(payload if isinstance(payload, dict) else None):
            if entry not in accepted:
                problems.append({"key": None, "record_id": None, "serial_number": None,
                                 "problem": f"an asset event of {event.timestamp} carries entry {str(entry.get('key'))[:80]!r}, "
                                            "which this workflow's watcher did not produce; ignored, nothing claimed"})  # fmt: skip
        if not entries_of(payload if isinstance(payload, dict) else None):
            problems.append({"key": None, "record_id": None, "serial_number": None,
                             "problem": f"an asset event of {event.timestamp} was not sent by this workflow's trigger; ignored"})  # fmt: skip
        for entry in accepted:
            key = entry["key"]
            store.set(CLAIM_PREFIX + key, claimed)  # a repeat is claimed too: the trigger stops resending it
            if first := _sent_before(context, asset, event, key, state):
                log.info(
                    "Entry %s was first sent at %s; that event's run acts on it, not this one", key, first
                )
                duplicates.append({"key": key, "record_id": entry["record_id"], "first_sent": str(first)})
                continue
            try:
                requests.append(_resolve(workflow, entry, kandji))
                device = requests[-1]["request"]["device"]
                log.info(
                    "Asset %s (serial %s) is Kandji device %s (%s, %s): %s",
                    entry["record_id"],
                    entry.get("serial_number"),
                    device["device_name"],
                    device["platform"],
                    device["device_id"],
                    "asking for approval" if workflow.approval_required else "no approval needed; sending",
                )
            except ValueError as exc:
                problems.append({"key": key, "record_id": entry["record_id"],
                                 "serial_number": entry.get("serial_number"), "problem": str(exc)})  # fmt: skip
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


def approval_decision(
    workflow: Workflow, answer: dict[str, Any] | None
) -> tuple[str | None, dict[str, Any] | None]:
    """What Airflow's own record of the answer says (the resume event Airflow built from its
    human-in-the-loop record when the person answered, or when the timeout applied the default): (who
    approved, None) when a listed approver (anyone allowed, without a list) answered Approve; else
    (None, why nothing is sent)."""
    if not isinstance(answer, dict) or "chosen_options" not in answer or answer.get("error"):
        return None, {"outcome": "Airflow holds no answer to the approval: nothing sent", "failure": True}
    who = answer.get("responded_by_user")
    if not isinstance(who, dict) or not who.get("id"):  # the timeout applied the default answer
        timeout = timedelta(seconds=workflow.approval.timeout)
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


def write_back_changes(
    workflow: Workflow, request: dict[str, Any], sent: dict[str, Any], approved_by: str | None
) -> dict[str, Any]:
    values = {
        **request["record"],
        "action": workflow.action.definition.title.removeprefix("Kandji "),
        "result": sent.get("result", ""),
        "sent_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial_number_sent": request["serial_number"],
        "approved_by": approved_by or "",
    }
    return {name: render(v, values) if isinstance(v, str) else v for name, v in workflow.write_back.items()}


class WorkflowActionOperator(KandjiDeviceActionOperator):
    """The preset's operator, with the workflow's last checks and its write-back: right before sending,
    the asset still matches and still holds the serial number that was resolved, and nothing was sent for
    this entry yet (a cleared run, a repeated or forged event); then ``sent:<entry>`` is written, before
    the call. After the action, the write-back fields are set on the asset (its failure is reported, and
    fails the run in the summary, but never resends the action)."""

    template_fields = ("inputs", "request")

    def __init__(self, *, workflow: Workflow, asset: Asset, request: Any, **kwargs: Any) -> None:
        kwargs.setdefault("inlets", [asset])
        super().__init__(**kwargs)
        self.workflow = workflow
        self.asset = asset
        self.request = request
        self.approved_by: str | None = None  # from Airflow's human-in-the-loop record, never from XCom

    def not_sent(self, context, outcome: dict[str, Any]):
        from airflow.sdk.exceptions import AirflowSkipException

        context["ti"].xcom_push(key=NOT_SENT, value=outcome)  # the summary's line for this record
        self.log.warning("%s", outcome["outcome"])
        return AirflowSkipException(outcome["outcome"])

    def execute(self, context) -> dict[str, Any]:
        result = super().execute(context)
        if self.approved_by:
            result["approved_by"] = self.approved_by
        if self.workflow.write_back and result.get("result") in ("sent", "already done"):
            result["write_back"], result["write_back_error"] = self._write_back(result)
        return result

    def _write_back(self, sent: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        from kandji_oomnitza.common.redaction import shorten
        from kandji_oomnitza.hooks.base import ApiError
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        changes = write_back_changes(self.workflow, self.request, sent, self.approved_by)
        try:
            OomnitzaHook(self.workflow.trigger.connection).update_record(
                "assets", self.request["record_id"], changes
            )
        except ApiError as exc:
            self.log.error(
                "The action was sent, but the write-back to asset %s failed: %s",
                self.request["record_id"],
                exc,
            )
            return None, shorten(exc, 300)
        self.log.info("Set on asset %s: %s", self.request["record_id"], changes)
        return changes, None

    def before_sending(self, context, device: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from kandji_oomnitza.hooks.base import ApiError
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        request, store = self.request, context["asset_state_store"][self.asset]
        key = request["key"]
        if sent := store.get(SENT_PREFIX + key):
            raise self.not_sent(
                context,
                {
                    "outcome": f"entry {key} was already sent (by run {sent.get('run_id')} at {sent.get('at')}); "
                    "it is not sent twice",
                    "failure": False,
                },
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
            raise self.not_sent(
                context,
                {
                    "outcome": f"the asset no longer matches {self.workflow.trigger.describe()} with serial number "
                    f"{request['serial_number']}: nothing sent",
                    "failure": False,
                },
            )
        if self.approved_by:
            self.log.info("Approved by %s (Airflow's record of the answer)", self.approved_by)
        store.set(
            SENT_PREFIX + key,
            {
                "run_id": context["run_id"],
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "approved_by": self.approved_by,
            },
        )


class ApprovedWorkflowActionOperator(HITLOperator, WorkflowActionOperator):
    """``WorkflowActionOperator`` that first asks for approval: the task waits in Airflow's
    ``awaiting_input`` state (listed under Required Actions), then, resumed by Airflow with its own record
    of the answer (who gave it, and which), decides on that record only."""

    template_fields = ("subject", "body", "inputs", "request")

    def __init__(self, *, workflow: Workflow, **kwargs: Any) -> None:
        approvers = [{"id": user, "name": user} for user in workflow.approval.approvers] or None
        super().__init__(
            workflow=workflow,
            options=[APPROVE_OPTION, REJECT_OPTION],
            defaults=REJECT_OPTION,
            assigned_users=approvers,
            response_timeout=timedelta(seconds=workflow.approval.timeout),
            **kwargs,
        )

    def execute(self, context) -> Any:
        return HITLOperator.execute(self, context)  # waits for the answer

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        # ``event`` is not an XCom: Airflow's API server (or the scheduler's timeout sweep) built it from
        # this task's human-in-the-loop record, with the user it authenticated, and stored it on the task
        # instance; no REST endpoint writes it, and a task may resume only itself.
        self.approved_by, stopped = approval_decision(self.workflow, event)
        if stopped is not None:
            raise self.not_sent(context, stopped)
        return WorkflowActionOperator.execute(self, context)


def _outcome(
    workflow: Workflow,
    request: dict[str, Any],
    action: dict[str, Any] | None,
    stopped: dict[str, Any] | None,
    sent: dict[str, Any] | None,
) -> tuple[dict, bool]:
    """What happened to one record, and whether that is a failure of the run. ``sent`` is the entry's
    ``sent:`` mark, written by this run's action just before the call to Kandji: a result that claims a
    send without it was not written by the action (XComs can be written by hand), and sent nothing."""
    line = {
        "record_id": request["record_id"],
        "serial_number": request["serial_number"],
        "entry": request["key"],
    }
    if isinstance(action, dict) and action.get("result"):
        if not sent:
            return {
                **line,
                "outcome": f"per_device.run_action reports {shorten(action.get('result'), 40)!r}, but no send was "
                "recorded for this entry: nothing was sent by this run (was its result written by hand?)",
            }, True
        line.update(
            outcome=f"{action.get('result')} ({workflow.action.definition.title})",
            delivery=action.get("delivery"),
        )
        if sent.get("approved_by"):  # who approved, as the action read it from Airflow's record
            line["approved_by"] = sent["approved_by"]
        if workflow.write_back:
            wrote = action.get("write_back")
            line["write_back"] = (
                wrote or f"failed ({action.get('write_back_error') or 'see per_device.run_action'})"
            )
            return line, not wrote
        return line, False
    if isinstance(stopped, dict) and stopped.get("outcome"):
        return {**line, "outcome": stopped["outcome"]}, bool(stopped.get("failure"))
    return {**line, "outcome": "the action did not finish (see per_device.run_action's log)"}, True


def summarize(
    workflow: Workflow, asset: Asset, requests: list[dict[str, Any]] | None, context
) -> dict[str, Any]:
    """One line per record: sent, rejected, timed out, or why not. Fails the run when a record could not
    be acted on, so it shows red in the grid. What was sent, and who approved it, come from the entries'
    ``sent:`` marks (written by the action itself), not from what the tasks left in XCom."""
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

    def pulled(task_id: str, key: str = "return_value") -> list[Any]:
        if not indexes:
            return []
        values = ti.xcom_pull(task_ids=task_id, map_indexes=indexes, key=key)
        values = values if isinstance(values, list) else [values]
        return values + [None] * (len(indexes) - len(values))

    actions, stopped = pulled(ACT), pulled(ACT, key=NOT_SENT)
    store = context["asset_state_store"][asset]
    records, failed = [], []
    for i, item in enumerate(requests):
        mark = store.get(SENT_PREFIX + item["request"]["key"])
        sent = mark if isinstance(mark, dict) and mark.get("run_id") == context["run_id"] else None
        line, bad = _outcome(workflow, item["request"], actions[i], stopped[i], sent)
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

        @task_group(group_id=GROUP)
        def per_device(subject: str, body: str, inputs: dict[str, Any], request: dict[str, Any]) -> None:
            common = {
                "task_id": "run_action",
                "task_display_name": preset.title,
                "preset": preset,
                "workflow": workflow,
                "asset": asset,
                "request": request,
                "inputs": inputs,
                "retries": 0,  # a device action is never resent by Airflow
            }
            if workflow.approval_required:
                ApprovedWorkflowActionOperator(subject=subject, body=body, **common)
            else:
                WorkflowActionOperator(**common)

        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0, inlets=[asset])
        def summary(requests: list[dict[str, Any]] | None, **context: Any) -> dict[str, Any]:
            return summarize(workflow, asset, requests, context)

        requests = prepare()
        summary(requests).set_upstream(per_device.expand_kwargs(requests))

    return workflow_dag()


def build_all(folder: Path | None = None) -> dict[str, DAG]:
    """A DAG per valid workflow file; invalid ones are reported by ``dags/kandji_workflow_file_errors.py``."""
    return {
        entry.dag_id: build_workflow_dag(entry.path.stem, entry.model, entry.path)
        for entry in scan(WORKFLOWS, folder)
        if entry.model is not None
    }
