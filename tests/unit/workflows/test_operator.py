"""workflows/operator.py: the run_action a workflow builds: the preset's operator, never retried, with
the workflow's connections, and with approval the human-in-the-loop in front of it."""

from __future__ import annotations

from airflow.sdk import Asset
from helpers.workflow_files import workflow

from kandji_oomnitza.workflows.operator import ApprovedWorkflowActionOperator, WorkflowActionOperator


def test_the_action_uses_the_workflows_connections_and_asks_only_when_approval_is_required():
    asset = Asset(name="kandji_workflow_x", uri="kandji-workflow://x")
    lock = workflow(action__kandji_connection="kandji_eu", trigger__connection="oomnitza_eu")
    asked = ApprovedWorkflowActionOperator(
        task_id="run_action", preset=lock.action.definition, workflow=lock, asset=asset,
        request={}, inputs={}, subject="Lock?", body="b", retries=0,
    )  # fmt: skip
    assert (asked.kandji_conn_id, asked.oomnitza_conn_id) == ("kandji_eu", "oomnitza_eu")
    assert asked.options == ["Approve", "Reject"] and asked.defaults == ["Reject"] and asked.retries == 0
    assert asked.response_timeout == lock.approval.timeout
    restart = workflow(action__preset="device_restart", action__inputs={}, approval="none", write_back={})
    sent = WorkflowActionOperator(
        task_id="run_action",
        preset=restart.action.definition,
        workflow=restart,
        asset=asset,
        request={},
        inputs={},
    )
    assert sent.kandji_conn_id == "kandji_default" and not hasattr(sent, "options")
