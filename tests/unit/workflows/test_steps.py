"""workflows/steps.py: inputs filled from a record, and each record's outcome in the summary."""

from __future__ import annotations

import pytest
from helpers.workflow_files import workflow

from kandji_oomnitza.common.notify import counts_line
from kandji_oomnitza.presets.handover import ActionResult
from kandji_oomnitza.workflows.config import (
    render,
)
from kandji_oomnitza.workflows.handover import SentMark, WorkflowSummary
from kandji_oomnitza.workflows.steps import render_inputs


def test_templates_fill_fields_only_and_never_evaluate_what_a_record_holds():
    assert render("Call {{ assigned_to }}", {"assigned_to": "{{ 7*7 }}"}) == "Call {{ 7*7 }}"
    assert render("Call {{assigned_to}}.", {}) == "Call ."
    lock = workflow()
    inputs = render_inputs(lock, {"assigned_to": "ann@example.com"}, "C02ABC123XYZ")
    assert inputs["message"] == "Reported lost. Please call IT, or ann@example.com."
    assert inputs["serial_number"] == "C02ABC123XYZ"
    with pytest.raises(ValueError, match=r"inputs\.message = .* is not valid for lock_device"):
        render_inputs(lock, {"assigned_to": "x" * 300}, "C02ABC123XYZ")


def test_each_record_outcome_says_what_was_sent_and_fails_the_run_only_when_it_should():
    from kandji_oomnitza.workflows.steps import outcome as _outcome

    lock = workflow()
    request = {"record_id": "e1", "serial_number": "C02ABC123XYZ", "key": "e1#1"}
    sent = ActionResult(
        preset="Kandji Lock Device",
        serial_number="C02ABC123XYZ",
        result="sent",
        delivery="completed",
        write_back={"kandji_last_action": "x"},
    )
    mark = SentMark(run_id="r1", at="2026-12-08T01:00:00+00:00", approved_by="bob")
    cases = [
        (None, None, None, "the action did not finish (see per_device.run_action's log)", True),
        (None, {"outcome": "rejected by admin: nothing sent", "failure": False}, None,
         "rejected by admin: nothing sent", False),
        (None, {"outcome": "no answer within 1 day, 0:00:00: nothing sent", "failure": False}, None,
         "no answer within 1 day, 0:00:00: nothing sent", False),
        (sent, None, mark, "sent (Kandji Lock Device)", False),
        (sent.model_copy(update={"write_back": None, "write_back_error": "HTTP 500"}), None, mark,
         "sent (Kandji Lock Device)", True),
        # A result that claims a send the action never marked: written by hand, nothing was sent.
        (sent, None, None, "per_device.run_action reports 'sent', but no send was recorded", True),
        # Marked by this run right before the call, then the task never finished (killed, or failed by
        # Airflow's scheduler): it may have reached Kandji, and the line says so rather than "not sent".
        (None, None, mark,
         "possibly sent: this run recorded the send at 2026-12-08T01:00:00+00:00", True),
    ]  # fmt: skip
    for action, stopped, marked, outcome, failed in cases:
        line, bad = _outcome(lock, request, action, stopped, marked)
        assert line.outcome.startswith(outcome) and bad is failed, line
    line, _ = _outcome(lock, request, sent, None, mark)
    assert line.approved_by == "bob" and line.write_back == {"kandji_last_action": "x"}


class Kandji:
    """Finds devices by serial number, as KandjiHook.find_device_by_serial does (no network here)."""

    def __init__(self, *serials: str) -> None:
        self.devices = {
            s: {"device_id": f"id-{s}", "device_name": f"Mac {s}", "platform": "Mac", "serial_number": s}
            for s in serials
        }

    def find_device_by_serial(self, serial: str) -> dict:
        from kandji_oomnitza.hooks.kandji import DeviceNotFoundError

        if serial not in self.devices:
            raise DeviceNotFoundError(f"No Kandji device has serial number {serial!r}.", status=404)
        return self.devices[serial]


def watcher_event(state, *records: str, at: float, forged: dict | None = None):
    """What the watcher fires for ``records`` entering (and the state it keeps), as a run sees it."""
    from kandji_oomnitza.workflows.state import advance
    from kandji_oomnitza.workflows.steps import EventView

    payloads = {
        rid: {"serial_number": f"C02{rid.upper():0>9}", "fields": {"assigned_to": "ann@example.com"}}
        for rid in records
    }
    state, entries = advance(state, payloads, now=at, claimed=set(), reemit_after=900)
    return state, EventView(at, {"from_trigger": True, "payload": {"entries": forged or entries}})


def test_prepare_claims_and_resolves_only_the_entries_the_watcher_produced():
    from kandji_oomnitza.workflows.state import advance
    from kandji_oomnitza.workflows.steps import EventView, prepare

    state, _ = advance(None, {}, now=0, claimed=set(), reemit_after=900)  # the baseline
    state, real = watcher_event(state, "a", "b", at=1.0)
    forged_entry = {**real.extra["payload"]["entries"][0], "entry": 2, "key": "a#2", "nonce": "0" * 32}
    forged = EventView(2.0, {"from_trigger": True, "payload": {"entries": [forged_entry]}})
    posted = EventView(3.0, {"payload": {"anything": 1}})  # not the trigger's, nothing it carries
    claimed: list[str] = []
    kandji = Kandji("C0200000000A", "C0200000000B")
    prepared = prepare(
        workflow(), [real, forged, posted], state, earlier=[], kandji=kandji, claim=claimed.append
    )
    assert claimed == ["a#1", "b#1"], "only the watcher's entries are claimed"
    assert [item["request"]["key"] for item in prepared.items] == ["a#1", "b#1"]
    assert prepared.items[0]["request"]["device"]["device_id"] == "id-C0200000000A"
    assert prepared.items[0]["inputs"]["message"] == "Reported lost. Please call IT, or ann@example.com."
    problems = [p["problem"] for p in prepared.problems]
    assert "carries entry 'a#2', which this workflow's watcher did not produce" in problems[0]
    assert "was not sent by this workflow's trigger" in problems[1]


def test_a_repeated_event_defers_to_the_first_and_an_unknown_serial_is_a_problem_not_a_send():
    from kandji_oomnitza.workflows.state import advance
    from kandji_oomnitza.workflows.steps import EventView, prepare

    state, _ = advance(None, {}, now=0, claimed=set(), reemit_after=900)
    state, first = watcher_event(state, "a", "z", at=1.0)
    repeat = EventView(5.0, first.extra)  # the same entries, sent again after a crash
    kandji = Kandji("C0200000000A")
    prepared = prepare(workflow(), [repeat], state, earlier=[first], kandji=kandji, claim=lambda key: None)
    assert [d["key"] for d in prepared.duplicates] == ["a#1", "z#1"] and prepared.items == []
    prepared = prepare(workflow(), [first], state, earlier=[first], kandji=kandji, claim=lambda key: None)
    assert [i["request"]["key"] for i in prepared.items] == ["a#1"]
    assert "No Kandji device has serial number 'C0200000000Z'" in prepared.problems[0]["problem"]
    # A forged earlier event of the same key (not the watcher's nonce) does not make the real one a repeat.
    forged = EventView(
        0.5,
        {
            "from_trigger": True,
            "payload": {"entries": [{**first.extra["payload"]["entries"][0], "nonce": "f" * 32}]},
        },
    )
    prepared = prepare(
        workflow(), [first], state, earlier=[forged, first], kandji=kandji, claim=lambda key: None
    )
    assert [i["request"]["key"] for i in prepared.items] == ["a#1"] and prepared.duplicates == []


def test_the_summary_fails_the_run_only_for_what_could_not_be_acted_on():
    from kandji_oomnitza.workflows.steps import summarize

    lock = workflow(write_back={})
    item = {"request": {"record_id": "e1", "serial_number": "C02ABC123XYZ", "key": "e1#1"}}
    mark = SentMark(run_id="r", at="2026-12-08T01:00:00+00:00", approved_by="bob")
    sent = ActionResult(preset="Kandji Lock Device", serial_number="C02ABC123XYZ", result="sent")
    summary = summarize(lock, "d", [item], [], [], actions=[sent], stopped=[None], marks=[mark])
    assert summary.failure is None and summary.sent == 1 and summary.records[0].approved_by == "bob"
    rejected = {"outcome": "rejected by bob: nothing sent", "failure": False}
    summary = summarize(lock, "d", [item], [], [], actions=[None], stopped=[rejected], marks=[None])
    assert summary.failure is None and summary.not_sent == 1
    problem = {"key": None, "record_id": None, "serial_number": None, "problem": "forged"}
    summary = summarize(lock, "d", [], [problem], [], actions=[], stopped=[], marks=[])
    assert summary.failure == "1 record(s) could not be acted on: None: forged"
    assert WorkflowSummary.read(summary.to_xcom()) == summary  # what the page and the notification read


def test_a_send_recorded_without_a_result_is_counted_as_possibly_sent_never_as_not_sent():
    from kandji_oomnitza.workflows.steps import summarize

    lock = workflow()
    items = [
        {"request": {"record_id": f"e{n}", "serial_number": f"C02ABC12300{n}", "key": f"e{n}#1"}}
        for n in (1, 2)
    ]
    marks = [SentMark(run_id="r1", at="2026-12-08T01:00:00+00:00"), None]
    summary = summarize(lock, "d", items, [], [], actions=[None, None], stopped=[None, None], marks=marks)
    assert (summary.sent, summary.possibly_sent, summary.not_sent) == (0, 1, 1)
    assert summary.failure is not None and "possibly sent" in summary.failure
    clean = summarize(lock, "d", items[1:], [], [], actions=[None], stopped=[None], marks=[None])
    assert clean.possibly_sent == 0 and "possibly" not in counts_line(clean.counts())


def test_a_run_action_result_written_by_hand_is_read_for_what_it_claims_and_sends_nothing():
    from kandji_oomnitza.workflows.steps import outcome

    lock = workflow()
    request = {"record_id": "e1", "serial_number": "C02ABC123XYZ", "key": "e1#1"}
    claimed = ActionResult.read({"result": "sent", "approved_by": "bob"})  # no preset, no serial: still read
    line, bad = outcome(lock, request, claimed, None, None)
    assert bad and "reports 'sent', but no send was recorded" in line.outcome and line.approved_by is None
    assert ActionResult.read({"result": "exploded"}) is None  # not a result this product writes
