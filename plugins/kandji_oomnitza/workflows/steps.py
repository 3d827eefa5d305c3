"""A workflow run's steps as plain functions over plain values (the DAG's tasks hand them what Airflow
holds: the run's asset events, the watcher's state, the tasks' results); what they hand each other is in
``handover.py``.

    prepare: the run's events → the entries the watcher produced → one Item per record (what to ask,
             what to send), and the problems nothing may be sent for
    run_action (operator.py): one Item → sent, or why not
    summarize: the Items, what each run_action left, and the ``sent:`` marks → one line per record
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.presets.handover import ActionResult
from kandji_oomnitza.workflows.approval import approval_body, approval_subject
from kandji_oomnitza.workflows.config import Workflow, render, serial_is_valid, valid_input
from kandji_oomnitza.workflows.handover import (
    Device,
    Duplicate,
    Item,
    NotSent,
    OutcomeLine,
    Problem,
    Request,
    SentMark,
    WorkflowSummary,
)
from kandji_oomnitza.workflows.state import authentic, entries_of, first_sent_before

log = logging.getLogger(__name__)

# How a record's outcome line begins (the counts are read from it)
SENT, ALREADY_DONE, POSSIBLY_SENT = "sent", "already done", "possibly sent"


@dataclass(frozen=True)
class EventView:
    """An asset event as a run sees it: when, what it carries, and whether it started a run."""

    timestamp: Any
    extra: dict[str, Any]
    created_dagruns: bool = True


@dataclass
class Prepared:
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)


# -- prepare ------------------------------------------------------------------------------------------
def watcher_entries(event: EventView, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The entries of an asset event that the workflow's watcher produced (see ``state.authentic``)."""
    if event.extra.get("from_trigger") is not True:
        return []
    return [entry for entry in entries_of(event.extra.get("payload")) if authentic(state, entry)]


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


def resolve(workflow: Workflow, entry: dict[str, Any], kandji: Any) -> Item:
    """One record → the approval's subject and body and the action's inputs; ``ValueError`` with the
    reason when nothing may be sent for it. ``kandji`` finds a device by its exact serial number."""
    from kandji_oomnitza.hooks.errors import ApiError

    given = entry.get("serial_number")
    if not isinstance(given, str) or not serial_is_valid(given):
        raise ValueError(
            f"the asset's {workflow.action.serial_field} is {given!r}, not a serial number: nothing sent"
        )
    serial = given.upper()
    try:
        device = kandji.find_device_by_serial(serial)
    except ApiError as exc:
        raise ValueError(f"{exc} Nothing was sent.") from None
    if problem := workflow.action.definition.platform_problem(device):
        raise ValueError(problem)
    try:
        inputs = render_inputs(workflow, entry.get("fields") or {}, serial)
    except ValueError as exc:
        raise ValueError(f"{exc}. Nothing was sent.") from None
    user = device.get("user")
    request = Request(
        key=entry["key"],
        record_id=entry["record_id"],
        serial_number=serial,
        record=entry.get("fields") or {},
        device=Device(
            device_id=device.get("device_id"),
            device_name=device.get("device_name"),
            platform=device.get("platform"),
            model=device.get("model"),
            user=user.get("email") if isinstance(user, dict) else user,
        ),
        inputs=inputs,
    )
    return Item(
        subject=approval_subject(workflow, serial, device.get("device_name")),
        body=approval_body(workflow, request),
        inputs=inputs,
        request=request,
    )


def prepare(
    workflow: Workflow,
    events: list[EventView],
    state: dict[str, Any] | None,
    *,
    earlier: list[EventView],
    kandji: Any,
    claim: Callable[[str], None],
) -> Prepared:
    """Claim this run's entries (each entry is acted on by the run of its first event only), then resolve
    each record's device in Kandji. Only entries the watcher produced are claimed: every entry is checked
    against the watcher's own state (its key and nonce) first. Problems are collected, never sent.

    :param events: the run's asset events, oldest first
    :param state: the watcher's state (the asset state store's ``state``)
    :param earlier: the asset's events of the last days, to find an entry's first event
    :param claim: marks an entry as taken on (the trigger then stops sending it again)
    """
    prepared = Prepared()
    known = [
        (e.timestamp, entry["key"])
        for e in earlier
        if e.created_dagruns
        for entry in watcher_entries(e, state)
    ]
    for event in events:
        carried = entries_of(
            event.extra.get("payload") if isinstance(event.extra.get("payload"), dict) else None
        )
        accepted = watcher_entries(event, state)
        if not carried:
            prepared.problems.append(
                _problem(
                    f"an asset event of {event.timestamp} was not sent by this workflow's trigger; ignored"
                )
            )
        for entry in carried:
            if entry not in accepted:
                prepared.problems.append(
                    _problem(
                        f"an asset event of {event.timestamp} carries entry {shorten(entry.get('key'), 80)!r}, "
                        "which this workflow's watcher did not produce; ignored, nothing claimed"
                    )
                )
        for entry in accepted:
            key = entry["key"]
            claim(key)  # a repeat is claimed too: the trigger stops resending it
            # Only the watcher's events that started a run count: one fired while the DAG was paused
            # started none (the entry must not wait for it for ever), and a forged one must not swallow
            # the real one.
            if first := first_sent_before(key, event.timestamp, known):
                log.info(
                    "Entry %s was first sent at %s; that event's run acts on it, not this one", key, first
                )
                prepared.duplicates.append(
                    Duplicate(key=key, record_id=entry["record_id"], first_sent=str(first))
                )
                continue
            try:
                item = resolve(workflow, entry, kandji)
            except ValueError as exc:
                prepared.problems.append(
                    Problem(
                        key=key,
                        record_id=entry["record_id"],
                        serial_number=entry.get("serial_number"),
                        problem=str(exc),
                    )
                )
                continue
            prepared.items.append(item)
            device = item["request"]["device"]
            log.info(
                "Asset %s (serial %s) is Kandji device %s (%s, %s): %s",
                entry["record_id"],
                entry.get("serial_number"),
                device["device_name"],
                device["platform"],
                device["device_id"],
                "asking for approval" if workflow.approval_required else "no approval needed; sending",
            )
    for problem in prepared.problems:
        log.error("Record %s: %s", problem.get("record_id"), problem["problem"])
    log.info(
        "%d record(s) to act on, %d with a problem, %d repeated event(s)",
        len(prepared.items),
        len(prepared.problems),
        len(prepared.duplicates),
    )
    return prepared


def _problem(text: str) -> Problem:
    return Problem(key=None, record_id=None, serial_number=None, problem=text)


def unknown_write_back_fields(workflow: Workflow, known: dict[str, Any]) -> list[str]:
    """The write-back fields Oomnitza's assets do not have (``known``: its field metadata)."""
    return [name for name in workflow.write_back if name not in known]


def write_back_changes(
    workflow: Workflow, request: Request, sent: ActionResult, approved_by: str | None
) -> dict[str, Any]:
    """The fields set on the asset after the action, its templates filled."""
    values = {
        **request["record"],
        "action": workflow.action.definition.title.removeprefix("Kandji "),
        "result": sent.result or "",
        "sent_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial_number_sent": request["serial_number"],
        "approved_by": approved_by or "",
    }
    return {name: render(v, values) if isinstance(v, str) else v for name, v in workflow.write_back.items()}


# -- summary --------------------------------------------------------------------------------------------
def outcome(
    workflow: Workflow,
    request: Request,
    action: ActionResult | None,
    stopped: NotSent | None,
    sent: SentMark | None,
) -> tuple[OutcomeLine, bool]:
    """What happened to one record, and whether that is a failure of the run. ``sent`` is the entry's
    ``sent:`` mark, written by this run's action just before the call to Kandji: a result that claims a
    send without it was not written by the action (XComs can be written by hand), and sent nothing."""
    line = OutcomeLine(
        record_id=request["record_id"], serial_number=request["serial_number"], entry=request["key"]
    )
    title = workflow.action.definition.title
    if action is not None and action.result:
        if not sent:
            line.outcome = (
                f"per_device.run_action reports {action.result!r}, but no send was "
                "recorded for this entry: nothing was sent by this run (was its result written by hand?)"
            )
            return line, True
        line.outcome = f"{action.result} ({title})"
        line.delivery = action.delivery
        line.approved_by = sent.approved_by  # as the action read it from Airflow's record
        if workflow.write_back:
            wrote = action.write_back
            line.write_back = wrote or f"failed ({action.write_back_error or 'see per_device.run_action'})"
            return line, not wrote
        return line, False
    if isinstance(stopped, dict) and stopped.get("outcome"):
        line.outcome = str(stopped["outcome"])
        return line, bool(stopped.get("failure"))
    if sent:  # the mark is written right before the call: the action may have reached Kandji
        line.outcome = (
            f"{POSSIBLY_SENT}: this run recorded the send at {sent.at}, but per_device.run_action did not "
            f"finish (see its log), so whether Kandji received the {title} is not known: check the device's "
            "commands in Kandji; it is never sent again for this entry"
        )
        return line, True
    line.outcome = (
        "the action did not finish (see per_device.run_action's log) and recorded no send: nothing was sent. An "
        "approval given within seconds of the question can make Airflow 3.3's scheduler fail the task before it "
        "resumes; clear the task to ask again"
    )
    return line, True


def summarize(
    workflow: Workflow,
    dag_id: str,
    items: list[Item],
    problems: list[Problem],
    duplicates: list[Duplicate],
    *,
    actions: list[ActionResult | None],
    stopped: list[NotSent | None],
    marks: list[SentMark | None],
) -> WorkflowSummary:
    """One line per record (sent, rejected, timed out, or why not) and, when a record could not be acted
    on, why the run fails (``failure``). ``actions``, ``stopped`` and ``marks`` are per item: what its
    run_action returned, its ``not_sent``, and its entry's ``sent:`` mark made by this run."""
    records: list[OutcomeLine] = []
    failed: list[OutcomeLine] = []
    for item, action, why, mark in zip(items, actions, stopped, marks, strict=True):
        line, bad = outcome(workflow, item["request"], action, why, mark)
        records.append(line)
        if bad:
            failed.append(line)
    for problem in problems:
        line = OutcomeLine(
            record_id=problem["record_id"],
            serial_number=problem["serial_number"],
            key=problem["key"],
            problem=problem["problem"],
            outcome=problem["problem"],
        )
        records.append(line)
        failed.append(line)
    for line in records:
        log.info("%s (%s): %s", line.serial_number, line.record_id, line.outcome)
    done = (SENT, ALREADY_DONE)
    return WorkflowSummary(
        workflow=dag_id,
        records=records,
        sent=sum(1 for r in records if r.outcome.startswith(done)),
        possibly_sent=sum(1 for r in records if r.outcome.startswith(POSSIBLY_SENT)),
        not_sent=sum(1 for r in records if not r.outcome.startswith((*done, POSSIBLY_SENT))),
        repeated_events=len(duplicates),
        failure=(
            f"{len(failed)} record(s) could not be acted on: "
            + "; ".join(f"{f.serial_number}: {f.outcome}" for f in failed)
            if failed
            else None
        ),
    )
