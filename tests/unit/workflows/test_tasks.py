"""workflows/tasks.py: inputs filled from a record, and each record's outcome in the summary."""

from __future__ import annotations

import pytest
from helpers.workflow_files import workflow

from kandji_oomnitza.workflows.config import (
    render,
)
from kandji_oomnitza.workflows.tasks import render_inputs


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
    from kandji_oomnitza.workflows.tasks import outcome as _outcome

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
