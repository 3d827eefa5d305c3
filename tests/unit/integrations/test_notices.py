"""integrations/notices.py: what an integration's notify targets are told, read from the typed run summary
(and nothing at all from a summary XCom that is not one)."""

from __future__ import annotations

import yaml
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.handover import RunSummary
from kandji_oomnitza.integrations.notices import failure_notice, records_failed_notice

ASSETS = Integration.model_validate(
    yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
)


class TaskInstance:
    """What a failure callback's context holds: the run's last task, whose XComs the callback reads."""

    task_id = "report"

    def __init__(self, summary):
        self.summary = summary

    def xcom_pull(self, task_ids, key):
        assert (task_ids, key) == ("report", "summary")
        return self.summary


def test_records_failed_says_how_many_and_lists_the_counts_and_the_error_log():
    summary = RunSummary(
        kandji_records=64, records_sent=60, added=50, updated=8, failed=2, failures=4, skipped=1,
        not_loaded=4, error_log="file:///r/errors.csv",
    )  # fmt: skip
    notice = records_failed_notice(ASSETS, "kandji_devices_and_software", "r1", summary)
    assert (
        notice.title == "Kandji Devices and Software: 4 record(s) not loaded, 1 skipped"
        and not notice.failure
    )
    counts, run, error_log = notice.details
    assert counts == (
        "kandji records 64, records sent 60, added 50, updated 8, unchanged 0, skipped 1, failed 2, not loaded 4"
    )
    assert (
        "/dags/kandji_devices_and_software/runs/r1" in run and error_log == "error log: file:///r/errors.csv"
    )


def test_a_failed_run_is_told_the_summary_s_reason_and_a_forged_summary_adds_nothing():
    summary = RunSummary(
        kandji_records=3, failure="Kandji was not read: the extract did not finish"
    ).to_xcom()
    told = failure_notice(ASSETS, "d", {"run_id": "r2", "ti": TaskInstance(summary)})
    assert told.sentence.endswith("failed: Kandji was not read: the extract did not finish")
    assert told.details[0].startswith("kandji records 3")
    forged = failure_notice(
        ASSETS, "d", {"run_id": "r2", "ti": TaskInstance({"kandji_records": "all of them"})}
    )
    assert forged.sentence.endswith("failed: task report failed (its log says why)")
    assert len(forged.details) == 1 and forged.details[0].startswith("run: ")
