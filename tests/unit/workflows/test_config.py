"""workflows/config.py: workflow files validated, each mistake named with the field and the fix."""

from __future__ import annotations

import pytest
import yaml
from helpers.workflow_files import SHIPPED, changed, problems_of, workflow

from kandji_oomnitza.workflows.config import (
    load_workflow,
)


def test_the_shipped_example_is_valid_disabled_and_asks_for_approval():
    shipped = load_workflow(SHIPPED)
    assert shipped.enabled is False
    assert shipped.approval_required
    assert shipped.trigger.poll_interval.total_seconds() == 300
    assert shipped.trigger.describe() == "status == 'Lost'"
    assert set(shipped.record_fields) >= {"status", "serial_number", "assigned_to"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"action__preset": "lock_devices"}, "'lock_devices' is not a preset; use one of"),
        ({"action__inputs__pin": "123456"}, "a PIN must not be written in a workflow file"),
        ({"action__inputs__mesage": "x"}, "inputs.mesage: lock_device takes no such input"),
        ({"action__inputs__message": "{{ assigned_to | upper }}"}, "may only hold placeholders"),
        (
            {"trigger__poll_interval": "1s"},
            "'1s' is not between 5s and 1d: Oomnitza would be polled too often",
        ),
        ({"trigger__poll_interval": "99999999999999999999d"}, "not between 5s and 1d"),
        ({"approval__timeout": "99999999999999999999d"}, "not between 1m and 30d"),
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
        ({"approval__approvers": ["alice", " "]}, "' ' is not an Airflow user id"),
        ({"enabled": None}, "enabled: is required"),
        ({"trigger__condition": []}, "trigger.condition: unknown key"),
        ({"notify__on_approval": ["it_alerts"]}, "notify.on_approval: unknown key"),
        ({"notify__on_failure": []}, "notify.on_failure: List should have at least 1 item"),
        ({"notify__on_failure": ["slack://T0/B0/X"]}, "connection of type apprise"),
        (
            {"notify__on_approval_waiting": ["it_alerts"], "approval__mode": "none"},
            "notify.on_approval_waiting is set but approval.mode is none",
        ),
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


def test_one_read_covers_every_trigger_of_a_read_group():
    from kandji_oomnitza.workflows.config import MAX_SHARED_VALUES, Trigger, shared_filters

    def trigger(*conditions: dict, match: str = "all") -> Trigger:
        return Trigger.model_validate({"conditions": list(conditions), "match": match})

    lost = trigger({"field": "status", "equals": "Lost"})
    stolen = trigger({"field": "status", "in": ["Stolen", "Lost"]})
    assert lost.read_group() == stolen.read_group()
    assert shared_filters([lost, stolen]) == ["status IN ['Lost','Stolen']"]
    # Any value asked for anywhere in the group reads the field as IS NOT NULL; so do too many values.
    assert shared_filters([lost, trigger({"field": "status", "not_empty": True})]) == ["status IS NOT NULL"]
    many = [trigger({"field": "status", "equals": f"s{i}"}) for i in range(MAX_SHARED_VALUES + 1)]
    assert shared_filters(many) == ["status IS NOT NULL"]
    # A value that cannot be quoted, or an empty one (it matches a record without the field), reads all.
    assert shared_filters([lost, trigger({"field": "status", "equals": "O'Neil"})]) == [None]
    assert shared_filters([lost, trigger({"field": "status", "equals": ""})]) == [None]
    # all: one read, the fields joined by AND; any: one read per field.
    both = trigger({"field": "status", "equals": "Lost"}, {"field": "notes", "equals": "x"})
    assert shared_filters([both]) == ["notes IN ['x'] AND status IN ['Lost']"]
    either = trigger({"field": "status", "equals": "Lost"}, {"field": "notes", "equals": "x"}, match="any")
    assert shared_filters([either]) == ["notes IN ['x']", "status IN ['Lost']"]
    assert either.read_group() != both.read_group()
