"""What a workflow run's tasks hand each other, one typed definition each:

    prepare ─Item (one per record)─► per_device[i].run_action  (Airflow maps over them: plain dicts, typed)
            ─Problem, Duplicate────► summary                   (XCom problems, duplicates)
    run_action ─NotSent────────────► summary                   (XCom not_sent)
               ─SentMark───────────► summary, every later run  (the asset state store, sealed)
    summary ──WorkflowSummary──────► the Integrations page, the failure notification

Whoever may edit a DAG's XComs can write these: the summary decides on the ``sent:`` marks in the asset
state store (sealed, see state.py), never on a result alone.
"""

from __future__ import annotations

from typing import Any, TypedDict

from kandji_oomnitza.common.handover import Handover


class Device(TypedDict):
    device_id: str | None
    device_name: str | None
    platform: str | None
    model: str | None
    user: str | None


class Request(TypedDict):
    """One record of the run, as resolved by ``prepare``: what ``run_action`` sends and checks again."""

    key: str  # the entry: <record id>#<n>
    record_id: str
    serial_number: str
    record: dict[str, Any]  # the record's fields the workflow uses
    device: Device
    inputs: dict[str, Any]  # the preset's inputs, filled and checked


class Item(TypedDict):
    """``prepare``'s return value, one per record: the keyword arguments of one ``per_device`` group."""

    subject: str
    body: str
    inputs: dict[str, Any]
    request: Request


class Problem(TypedDict):
    key: str | None
    record_id: str | None
    serial_number: str | None
    problem: str


class Duplicate(TypedDict):
    key: str
    record_id: str
    first_sent: str


class NotSent(TypedDict):
    """``run_action``'s XCom ``not_sent``: why nothing was sent, and whether that fails the run."""

    outcome: str
    failure: bool


class SentMark(Handover):
    """An entry's ``sent:`` mark in the asset state store (sealed, see state.py): this run's action is about
    to call Kandji. Written once, right before the call, so a re-run never sends the entry again."""

    run_id: str
    at: str  # when the action recorded the send (ISO 8601)
    approved_by: str | None = None  # Airflow's record of who approved, when the workflow asks


class OutcomeLine(Handover):
    """What happened to one record, in the summary: ``outcome`` in words, beginning with what it counts as
    (``sent``, ``already done``, ``possibly sent``, anything else: not sent)."""

    record_id: str | None = None
    serial_number: str | None = None
    entry: str | None = None  # <record id>#<n>
    key: str | None = None  # a problem's entry, when it had one
    problem: str | None = None
    outcome: str = ""
    delivery: Any = None
    approved_by: str | None = None  # Airflow's record of who approved
    write_back: Any = None  # the fields set on the asset, or why they were not


class WorkflowSummary(Handover):
    """The summary task's return value (XCom ``summary`` too, also when the run fails)."""

    workflow: str = ""
    records: list[OutcomeLine] = []
    sent: int = 0
    possibly_sent: int = 0
    not_sent: int = 0
    repeated_events: int = 0
    failure: str | None = None

    def counts(self) -> dict[str, int | None]:
        return {"sent": self.sent, "possibly_sent": self.possibly_sent or None, "not_sent": self.not_sent}
