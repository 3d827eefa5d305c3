"""workflows/notices.py: a failed workflow run's message, from the typed workflow summary."""

from __future__ import annotations

from helpers.workflow_files import workflow

from kandji_oomnitza.workflows.handover import OutcomeLine, WorkflowSummary
from kandji_oomnitza.workflows.notices import failure_notice


class TaskInstance:
    task_id = "summary"

    def __init__(self, summary):
        self.summary = summary

    def xcom_pull(self, task_ids, key):
        return self.summary


def test_a_failed_workflow_run_is_told_why_and_its_counts():
    lock = workflow()
    summary = WorkflowSummary(
        workflow="kandji_workflow_lost_device_lock",
        records=[OutcomeLine(serial_number="C02ABC123XYZ", outcome="possibly sent: ...")],
        possibly_sent=1,
        not_sent=2,
        failure="1 record(s) could not be acted on: C02ABC123XYZ: possibly sent: ...",
    ).to_xcom()
    notice = failure_notice(
        lock, "kandji_workflow_lost_device_lock", {"run_id": "r", "ti": TaskInstance(summary)}
    )
    assert "failed: 1 record(s) could not be acted on" in notice.sentence
    assert notice.details[0] == "sent 0, possibly sent 1, not sent 2"
    clean = WorkflowSummary(sent=1).to_xcom()
    counts = failure_notice(lock, "d", {"run_id": "r", "ti": TaskInstance(clean)}).details[0]
    assert counts == "sent 1, not sent 0"  # no "possibly sent" when there was none
