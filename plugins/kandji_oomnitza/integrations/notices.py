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
from kandji_oomnitza.integrations.handover import MissingResult

COUNTS = (
    "kandji_records",
    "records_sent",
    "added",
    "updated",
    "unchanged",
    "skipped",
    "failed",
    "not_loaded",
)


def _details(dag_id: str, run_id: str, summary: dict[str, Any] | None, error_log: str | None) -> list[str]:
    lines = []
    if summary and (counts := counts_line(summary, COUNTS)):
        lines.append(counts)
    lines.append(f"run: {run_url(dag_id, run_id)}")
    if error_log:
        lines.append(f"error log: {error_log}")
    return lines


def failure_notice(integration: Integration, dag_id: str, context: dict[str, Any]) -> Notice:
    """The run failed (a DAG failure callback's context: the run, its last task, Airflow's reason)."""
    run_id = context_run_id(context)
    summary = pulled_summary(context, names.REPORT, names.SUMMARY)
    return Notice(
        title=f"{integration.name}: run failed",
        sentence=f"{integration.name} ({dag_id}) run {run_id} failed: {shorten(failure_reason(context, summary), 600)}",
        details=_details(dag_id, run_id, summary, (summary or {}).get("error_log")),
    )


def records_failed_notice(
    integration: Integration, dag_id: str, run_id: str, summary: dict[str, Any]
) -> Notice:
    """The run succeeded, but records were not loaded or Oomnitza skipped them."""
    failed, skipped = summary.get("failures", 0), summary.get("skipped", 0)
    return Notice(
        title=f"{integration.name}: {failed} record(s) not loaded, {skipped} skipped",
        sentence=(
            f"{integration.name} ({dag_id}) run {run_id} finished, but {failed} record(s) were not loaded and "
            f"{skipped} were skipped by Oomnitza; the error log gives each one's reason."
        ),
        details=_details(dag_id, run_id, summary, summary.get("error_log")),
        failure=False,
    )


def safeguard_notice(
    integration: Integration, dag_id: str, run_id: str, result: MissingResult, error_log: str
) -> Notice:
    """A safeguard stopped the flagging of records gone from Kandji."""
    held = f"{len(result.held_back)} record(s) held back" if result.held_back else "nothing flagged"
    return Notice(
        title=f"{integration.name}: flagging stopped by a safeguard",
        sentence=str(result.safeguard),
        details=[
            held,
            f"run: {run_url(dag_id, run_id)}",
            f"error log (once the report has run): {error_log}",
        ],
    )
