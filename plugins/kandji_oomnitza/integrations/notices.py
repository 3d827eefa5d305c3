"""The messages an integration's ``notify`` block sends (common/notify.py delivers them): one sentence,
the counts, the links. Built from the run's summary (the report's) and Airflow's callback context; never
a token, a PIN or a record's payload (the summary holds counts and sentences only, and is redacted)."""

from __future__ import annotations

from typing import Any

from kandji_oomnitza import names
from kandji_oomnitza.common.notify import (
    Notice,
    context_run_id,
    counts_line,
    failure_reason,
    pulled_summary,
    run_url,
)
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.handover import RunSummary
from kandji_oomnitza.settings_files import duration_words


def _counts(summary: RunSummary) -> dict[str, int | None]:
    return {
        "kandji_records": summary.kandji_records,
        "records_sent": summary.records_sent,
        **summary.outcome_counts(),
        "not_loaded": summary.not_loaded,
    }


def _details(dag_id: str, run_id: str, summary: RunSummary | None) -> list[str]:
    lines = []
    if summary is not None and (counts := counts_line(_counts(summary))):
        lines.append(counts)
    lines.append(f"run: {run_url(dag_id, run_id)}")
    if summary is not None and summary.error_log:
        lines.append(f"error log: {summary.error_log}")
    return lines


def failure_notice(integration: Integration, dag_id: str, context: dict[str, Any]) -> Notice:
    """The run failed (a DAG failure callback's context: the run, its last task, Airflow's reason)."""
    run_id = context_run_id(context)
    summary = RunSummary.read(pulled_summary(context, names.REPORT, names.SUMMARY))
    reason = failure_reason(context, summary.failure if summary is not None else None)
    return Notice(
        title=f"{integration.name}: run failed",
        sentence=f"{integration.name} ({dag_id}) run {run_id} failed: {shorten(reason, 600)}",
        details=_details(dag_id, run_id, summary),
    )


def records_failed_notice(integration: Integration, dag_id: str, run_id: str, summary: RunSummary) -> Notice:
    """The run succeeded, but records were not loaded or Oomnitza skipped them."""
    failed, skipped = summary.failures, summary.skipped
    return Notice(
        title=f"{integration.name}: {failed} record(s) not loaded, {skipped} skipped",
        sentence=(
            f"{integration.name} ({dag_id}) run {run_id} finished, but {failed} record(s) were not loaded and "
            f"{skipped} were skipped by Oomnitza; the error log gives each one's reason."
        ),
        details=_details(dag_id, run_id, summary),
        failure=False,
    )


def safeguard_asking_notice(integration: Integration, context: dict[str, Any]) -> Notice:
    """A safeguard stopped the flagging, and a person is asked (a human-in-the-loop task's notifier context:
    the task, with the question it asks, and its instance)."""
    from kandji_oomnitza.common.approval import required_actions_url

    task, ti = context["task"], context["ti"]
    who = ", ".join(integration.confirmers) or "any user allowed to answer in Airflow"
    return Notice(
        title=f"{integration.name}: a safeguard stopped the flagging; confirmation needed",
        sentence=(
            f"{shorten(task.subject, 200)} A safeguard stopped it; {who} may confirm it. Without an answer within "
            f"{duration_words(integration.confirm_within)}, nothing is flagged."
        ),
        details=[
            f"confirm or reject: {required_actions_url(context)}",
            f"run: {run_url(ti.dag_id, ti.run_id)}",
        ],
        failure=False,
    )
