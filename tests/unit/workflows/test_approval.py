"""workflows/approval.py: what a person is asked, and what their answer (Airflow's record of it) means."""

from __future__ import annotations

from helpers.workflow_files import workflow

from kandji_oomnitza.workflows.approval import md_literal as _md


def test_record_values_reach_the_approval_text_as_literal_text():
    shown = _md("[Pay here](https://evil.example) https://evil.example/reset **urgent**")
    assert shown == "`[Pay here](https://evil.example) https://evil.example/reset **urgent**`"
    assert _md("a `tick` b") == "``a `tick` b``" and _md("`x") == "`` `x ``"
    assert _md(None) == "(none)" and _md("a\nb") == "`a b`"


def test_only_a_listed_approvers_approve_in_airflows_record_sends():
    from kandji_oomnitza.workflows.approval import approval_decision

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
        (listed, {**answer(["Reject"], None), "timedout": True}, "no answer within 1 day", False),
        (listed, {"error": "timeout", "error_type": "timeout"}, "Airflow holds no answer", True),
        (listed, None, "Airflow holds no answer", True),
    ]:
        who, stopped = approval_decision(flow, event)
        assert who is None and stopped["outcome"].startswith(outcome) and stopped["failure"] is failure, (
            stopped
        )
