"""Workflow files (validation, conditions, templates) and the exactly-once bookkeeping, without Airflow
running: the end-to-end proof is tests/e2e/test_workflows.py."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from kandji_oomnitza.exceptions import WorkflowFileError
from kandji_oomnitza.settings_files import WORKFLOWS, scan
from kandji_oomnitza.workflows.config import (
    Workflow,
    load_workflow,
    render,
)
from kandji_oomnitza.workflows.dag import _md, build_all, render_inputs
from kandji_oomnitza.workflows.state import (
    advance,
    authentic,
    entries_of,
    first_sent_before,
    inside_but_missing,
)
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

SHIPPED = ROOT / "include" / "workflows" / "lost_device_lock.yaml"
DATA = yaml.safe_load(SHIPPED.read_text())


def changed(**changes) -> dict:
    """The shipped example's settings with ``a__b=value`` set (None removes the key)."""
    data = copy.deepcopy(DATA)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def workflow(**changes) -> Workflow:
    return Workflow.model_validate(changed(**changes))


def problems_of(tmp_path: Path, text: str, name: str = "broken.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(WorkflowFileError) as caught:
        load_workflow(path)
    return str(caught.value)


def test_the_shipped_example_is_valid_disabled_and_asks_for_approval():
    shipped = load_workflow(SHIPPED)
    assert shipped.enabled is False
    assert shipped.approval_required
    assert shipped.trigger.poll_interval == 300
    assert shipped.trigger.describe() == "status == 'Lost'"
    assert set(shipped.record_fields) >= {"status", "serial_number", "assigned_to"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"action__preset": "lock_devices"}, "'lock_devices' is not a preset; use one of"),
        ({"action__inputs__pin": "123456"}, "a PIN must not be written in a workflow file"),
        ({"action__inputs__mesage": "x"}, "inputs.mesage: lock_device takes no such input"),
        ({"action__inputs__message": "{{ assigned_to | upper }}"}, "may only hold placeholders"),
        ({"trigger__poll_interval": "1s"}, "shorter than 5 seconds"),
        (
            {"action__inputs__phone_number": 5550100},
            "inputs.phone_number = 5550100 is not valid for lock_device",
        ),
        ({"action__inputs__phone_number": "call me"}, "inputs.phone_number = 'call me' is not valid"),
        ({"trigger__poll_interval": "often"}, "not a duration"),
        ({"trigger__object": "users"}, "users are not supported yet"),
        (
            {"trigger__conditions": [{"field": "status"}]},
            "give exactly one of equals, in, not_empty (got none)",
        ),
        (
            {"trigger__conditions": [{"field": "status", "equals": "Lost", "in": ["Lost"]}]},
            "give exactly one of equals, in, not_empty (got equals, in)",
        ),
        ({"trigger__conditions": [{"field": "Status", "equals": "Lost"}]}, "should match pattern"),
        ({"write_back": {"status": "Locked"}}, "which the trigger watches"),
        ({"write_back": {"serial_number": "x"}}, "must not change serial_number"),
        (
            {"approval__approvers": ["alice"], "approval__mode": "none"},
            "approvers is set but approval.mode is none",
        ),
        ({"approval__timeout": "10s"}, "at least a minute"),
        ({"enabled": None}, "enabled: is required"),
        ({"trigger__condition": []}, "trigger.condition: unknown key"),
    ],
)
def test_mistakes_are_named_with_the_field_and_the_fix(tmp_path, changes, expected):
    message = problems_of(tmp_path, yaml.safe_dump(changed(**changes)))
    assert "Invalid workflow file" in message and "broken.yaml" in message
    assert expected in message, message


def test_device_set_name_needs_its_input_and_approval_defaults_follow_the_preset():
    with pytest.raises(ValueError, match=r"inputs\.device_name is required by device_set_name"):
        workflow(action__preset="device_set_name", action__inputs={}, approval__mode=None)
    restart = workflow(action__preset="device_restart", action__inputs={}, approval={}, write_back={})
    assert not restart.approval_required
    erase = workflow(action__preset="erase_device", action__inputs={}, approval="required")
    assert erase.approval_required


def test_a_broken_file_breaks_only_itself(tmp_path):
    (tmp_path / "good.yaml").write_text(SHIPPED.read_text())
    (tmp_path / "bad.yaml").write_text("enabled: true\ntrigger: {}\n")
    (tmp_path / "Bad Name.yaml").write_text(SHIPPED.read_text())
    entries = {e.path.name: e for e in scan(WORKFLOWS, tmp_path)}
    assert entries["good.yaml"].model is not None
    assert "trigger.conditions: is required" in entries["bad.yaml"].error
    assert "lower-case letters" in entries["Bad Name.yaml"].error
    assert list(build_all(tmp_path)) == ["kandji_workflow_good"]


def test_conditions_match_as_written_and_become_oomnitza_filters():
    lost = workflow()
    assert lost.trigger.holds({"status": "Lost"}) and not lost.trigger.holds({"status": "lost "})
    assert lost.trigger.server_filters() == ["status eq 'Lost'"]
    anyof = workflow(
        trigger__match="any",
        trigger__conditions=[
            {"field": "status", "in": ["Lost", "Stolen"]},
            {"field": "notes", "not_empty": True},
        ],
    )
    assert anyof.trigger.server_filters() == ["status IN ['Lost','Stolen']", "notes IS NOT NULL"]
    assert anyof.trigger.holds({"status": "Stolen"}) and anyof.trigger.holds({"notes": "x"})
    assert not anyof.trigger.holds({"status": "In Use", "notes": ""})
    quoted = workflow(trigger__conditions=[{"field": "status", "equals": "it's lost"}])
    assert quoted.trigger.server_filters() == [None]  # read all, checked here: never an unsafe filter


def test_templates_fill_fields_only_and_never_evaluate_what_a_record_holds():
    assert render("Call {{ assigned_to }}", {"assigned_to": "{{ 7*7 }}"}) == "Call {{ 7*7 }}"
    assert render("Call {{assigned_to}}.", {}) == "Call ."
    lock = workflow()
    inputs = render_inputs(lock, {"assigned_to": "ann@example.com"}, "C02ABC123XYZ")
    assert inputs["message"] == "Reported lost. Please call IT, or ann@example.com."
    assert inputs["serial_number"] == "C02ABC123XYZ"
    with pytest.raises(ValueError, match=r"inputs\.message = .* is not valid for lock_device"):
        render_inputs(lock, {"assigned_to": "x" * 300}, "C02ABC123XYZ")


# -- exactly once per entry ------------------------------------------------------------------------
def step(state, matching, now, claimed=(), reemit_after=900):
    payloads = {rid: {"serial_number": f"S{rid}"} for rid in matching}
    return advance(state, payloads, now=now, claimed=set(claimed), reemit_after=reemit_after)


def test_first_poll_is_a_baseline_then_one_event_per_entry():
    state, events = step(None, ["a"], 0)
    assert events == [] and state["records"]["a"]["inside"]
    state, events = step(state, ["a", "b"], 10)
    assert [e["key"] for e in events] == ["b#1"]
    state, events = step(state, ["a", "b"], 20, claimed=["b#1"])
    assert events == [] and state["pending"] == {}
    state, events = step(state, ["a"], 30)  # b is missing once: maybe a short read, not gone yet
    state, events = step(state, ["a", "b"], 35)
    assert events == []
    state, events = step(state, ["a"], 40)  # b leaves: missing from two polls in a row
    state, events = step(state, ["a"], 45)
    assert events == [] and not state["records"]["b"]["inside"]
    state, events = step(state, ["a", "b"], 50)  # and enters again
    assert [e["key"] for e in events] == ["b#2"]


def test_one_empty_read_does_not_turn_every_match_into_a_new_entry():
    state, _ = step(None, ["a", "b"], 0)
    state, events = step(state, [], 10)  # Oomnitza answered [] once
    state, events = step(state, ["a", "b"], 20)
    assert events == []


def test_changed_conditions_start_from_what_matches_now():
    state, _ = step(None, ["a"], 0)
    state, _ = advance(state, {"a": {}}, now=10, claimed=set(), reemit_after=900, conditions="lost")
    state, events = advance(
        state, {"a": {}, "s": {}}, now=20, claimed=set(), reemit_after=900, conditions="lost-or-stolen"
    )
    assert events == []  # a year of stolen assets start nothing when the condition is widened
    state, events = advance(
        state,
        {"a": {}, "s": {}, "n": {}},
        now=30,
        claimed=set(),
        reemit_after=900,
        conditions="lost-or-stolen",
    )
    assert [e["key"] for e in events] == ["n#1"]


def test_an_unclaimed_entry_is_sent_again_under_the_same_key_only_after_the_grace():
    state, _ = step(None, [], 0)
    state, events = step(state, ["b"], 10)
    assert [e["key"] for e in events] == ["b#1"]
    state, events = step(state, ["b"], 20, reemit_after=100)
    assert events == []
    state, events = step(state, [], 200, reemit_after=100)  # lost event: sent again even if b leaves
    assert [(e["key"], e["sent"]) for e in events] == [("b#1", 2)]
    state, events = step(state, [], 250, claimed=["b#1"], reemit_after=100)
    assert events == [] and state["pending"] == {}


def test_a_restart_that_reads_the_saved_state_repeats_nothing():
    state, _ = step(None, [], 0)
    saved, events = step(state, ["b"], 10)
    assert len(events) == 1
    _, events = step(copy.deepcopy(saved), ["b"], 15)  # a new triggerer, same store
    assert events == []


def test_only_entries_the_watcher_produced_are_authentic():
    state, _ = step(None, [], 0)
    state, (real,) = step(state, ["b"], 10)
    assert authentic(state, real) and real["nonce"] == state["records"]["b"]["nonces"]["1"]
    assert entries_of({"entries": [real]}) == [real] and entries_of(real) == [real] and entries_of({}) == []
    forged = [
        {**real, "nonce": "0" * 32},  # a made-up nonce
        {**real, "entry": 2, "key": "b#2"},  # an entry the watcher never started
        {**real, "key": "c#1"},  # a key that names another record
        {key: value for key, value in real.items() if key != "nonce"},
        {**real, "entry": "1"},
    ]
    assert not any(authentic(state, entry) for entry in forged)
    state, _ = step(state, [], 20)
    state, _ = step(state, [], 30)  # b leaves
    state, (again,) = step(state, ["b"], 40)
    assert again["key"] == "b#2" and authentic(state, again) and authentic(state, real)  # both remembered


def test_a_record_missing_from_a_poll_leaves_only_when_confirmed_gone():
    state, _ = step(None, ["a", "b"], 0)
    for now in (10, 20, 30):  # b missing, but read again it still matches: not gone
        state, events = advance(state, {"a": {}}, now=now, claimed=set(), reemit_after=900, gone=set())
        assert events == [] and state["records"]["b"]["inside"]
    assert inside_but_missing(state, ["a"], "") == ["b"]
    for now in (40, 50):
        state, _ = advance(state, {"a": {}}, now=now, claimed=set(), reemit_after=900, gone={"b"})
    assert not state["records"]["b"]["inside"] and inside_but_missing(state, ["a"], "") == []


def test_only_the_first_event_of_an_entry_is_acted_on():
    assert first_sent_before("b#1", 12, [(10, "b#1"), (11, "c#1"), (12, "b#1")]) == 10
    assert first_sent_before("b#1", 10, [(10, "b#1"), (11, "b#1"), (9, "c#1")]) is None


def test_the_trigger_keeps_state_and_starts_one_event_per_entry():
    spec = DATA["trigger"]
    trigger = OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x", trigger=spec, serial_field="serial_number", record_fields=["status"]
    )
    assert trigger.serialize()[1]["trigger"] == spec

    def snapshot(*statuses):
        records = [
            {"equipment_id": f"e{i}", "serial_number": f"S{i}", "status": s} for i, s in enumerate(statuses)
        ]
        return {"ok": True, "records": [*records, {"status": "Lost"}], "warnings": [], "at": 1.0}

    async def scenario():
        first = await trigger._advance(snapshot("Lost", "In Use"))
        second = await trigger._advance(snapshot("Lost", "Lost"))
        failed = await trigger._advance({"ok": False, "error": "HTTP 503", "at": 2.0})
        third = await trigger._advance(snapshot("Lost", "Lost"))
        return first, second, failed, third

    first, second, failed, third = asyncio.run(scenario())
    assert first == [] and failed == [] and third == []
    assert len(second) == 1 and [
        (e["record_id"], e["serial_number"], e["fields"]) for e in second[0]["entries"]
    ] == [("e1", "S1", {"status": "Lost"})]
    assert trigger.store.values["last_poll"]["ok"] is True


def test_records_entering_in_the_same_poll_share_one_event():
    trigger = OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x", trigger=DATA["trigger"], serial_field="serial_number", record_fields=[]
    )

    def snapshot(lost: int, at: float) -> dict:
        records = [{"equipment_id": f"e{i}", "serial_number": f"S{i}", "status": "Lost"} for i in range(lost)]
        return {
            "ok": True,
            "records": records or [{"equipment_id": "x", "status": "In Use"}],
            "warnings": [],
            "at": at,
        }

    async def scenario():
        await trigger._advance(snapshot(0, 1.0))
        return await trigger._advance(snapshot(3, 2.0))

    (event,) = asyncio.run(scenario())
    assert [e["key"] for e in event["entries"]] == ["e0#1", "e1#1", "e2#1"]
    state = trigger.store.values["state"]
    assert all(authentic(state, entry) for entry in event["entries"])


def test_record_values_reach_the_approval_text_as_literal_text():
    shown = _md("[Pay here](https://evil.example) https://evil.example/reset **urgent**")
    assert shown == "`[Pay here](https://evil.example) https://evil.example/reset **urgent**`"
    assert _md("a `tick` b") == "``a `tick` b``" and _md("`x") == "`` `x ``"
    assert _md(None) == "(none)" and _md("a\nb") == "`a b`"


def test_each_record_outcome_says_what_was_sent_and_fails_the_run_only_when_it_should():
    from kandji_oomnitza.workflows.dag import _outcome

    lock = workflow()
    request = {"record_id": "e1", "serial_number": "C02ABC123XYZ", "key": "e1#1"}
    sent = {"result": "sent", "delivery": "completed", "write_back": {"kandji_last_action": "x"}}
    mark = {"run_id": "r1", "approved_by": "bob"}
    cases = [
        (None, None, None, "the action did not finish (see per_device.run_action's log)", True),
        (None, {"outcome": "rejected by admin: nothing sent", "failure": False}, None,
         "rejected by admin: nothing sent", False),
        (None, {"outcome": "no answer within 1 day, 0:00:00: nothing sent", "failure": False}, None,
         "no answer within 1 day, 0:00:00: nothing sent", False),
        (sent, None, mark, "sent (Kandji Lock Device)", False),
        ({**sent, "write_back": None, "write_back_error": "HTTP 500"}, None, mark, "sent (Kandji Lock Device)", True),
        # A result that claims a send the action never marked: written by hand, nothing was sent.
        (sent, None, None, "per_device.run_action reports 'sent', but no send was recorded", True),
    ]  # fmt: skip
    for action, stopped, marked, outcome, failed in cases:
        line, bad = _outcome(lock, request, action, stopped, marked)
        assert line["outcome"].startswith(outcome) and bad is failed, line
    line, _ = _outcome(lock, request, sent, None, mark)
    assert line["approved_by"] == "bob" and line["write_back"] == {"kandji_last_action": "x"}


def test_only_a_listed_approvers_approve_in_airflows_record_sends():
    from kandji_oomnitza.workflows.dag import approval_decision

    listed = workflow(approval={"mode": "required", "approvers": ["bob"]})
    anyone = workflow()
    bob, alice = {"id": "bob", "name": "Bob B"}, {"id": "alice", "name": "alice"}

    def answer(options, who):
        return {
            "chosen_options": options,
            "responded_by_user": who,
            "responded_at": "now",
            "params_input": {},
        }

    assert approval_decision(listed, answer(["Approve"], bob)) == ("Bob B", None)
    assert approval_decision(anyone, answer(["Approve"], alice)) == ("alice", None)
    for flow, event, outcome, failure in [
        (
            listed,
            answer(["Approve"], alice),
            "approved by alice, who is not one of the approvers (bob)",
            True,
        ),
        (listed, answer(["Reject"], bob), "rejected by Bob B: nothing sent", False),
        (listed, {**answer(["Reject"], None), "timedout": True}, "no answer within 1 day, 0:00:00", False),
        (listed, {"error": "timeout", "error_type": "timeout"}, "Airflow holds no answer", True),
        (listed, None, "Airflow holds no answer", True),
    ]:
        who, stopped = approval_decision(flow, event)
        assert who is None and stopped["outcome"].startswith(outcome) and stopped["failure"] is failure, (
            stopped
        )


ERASE = {"action__preset": "erase_device", "action__inputs": {}, "write_back": {}}


def test_an_erase_workflow_without_approval_is_refused_unless_it_says_so(tmp_path):
    unattended = changed(**ERASE, approval="none")
    message = problems_of(tmp_path, yaml.safe_dump(unattended))
    assert "broken.yaml" in message and "an erase cannot be undone" in message
    assert "approval: {mode: none, unattended_erase: true}" in message
    explicit = workflow(**ERASE, approval={"mode": "none", "unattended_erase": True})
    assert explicit.unattended_erase and not explicit.approval_required
    assert not workflow(**ERASE).unattended_erase  # approval required by default for erase
    for wrong in ({"mode": "required", "unattended_erase": True}, {"mode": "none", "unattended_erase": True}):
        preset = "erase_device" if wrong["mode"] == "required" else "lock_device"
        text = yaml.safe_dump(changed(**{**ERASE, "action__preset": preset}, approval=wrong))
        assert "unattended_erase is only for erase_device with approval mode none" in problems_of(
            tmp_path, text
        )
