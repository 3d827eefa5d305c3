"""The run report: a summary in the task log and XCom, and the error log as a CSV artifact.

The CSV goes to ``<reports path>/<dag_id>/<run_id>/errors.csv``. The reports path is the Airflow
Variable ``kandji_oomnitza_reports_path`` (any ObjectStoragePath URL: ``s3://conn@bucket/reports``,
``file:///shared/reports``), by default ``file://$AIRFLOW_HOME/kandji_oomnitza_reports``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kandji_oomnitza.integration import TooManyFailures, error_csv, error_rows, summarise
from kandji_oomnitza.integration_config import Integration

log = logging.getLogger(__name__)
REPORTS_VARIABLE = "kandji_oomnitza_reports_path"


def default_reports_root() -> str:
    return "file://" + os.path.join(
        os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kandji_oomnitza_reports"
    )


def reports_root() -> str:
    """The reports path as a task sees it (the Task SDK's Variable)."""
    from airflow.sdk import Variable

    return Variable.get(REPORTS_VARIABLE, default=default_reports_root())


def error_log_path(root: str, dag_id: str, run_id: str):
    """Where a run's error log lives; the Integrations page finds it the same way."""
    from airflow.sdk import ObjectStoragePath

    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return ObjectStoragePath(root) / dag_id / safe_run / "errors.csv"


def write_error_log(dag_id: str, run_id: str, text: str) -> str:
    target = error_log_path(reports_root(), dag_id, run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return str(target)


def publish_report(
    integration: Integration,
    dag_id: str,
    extracted: dict[str, Any],
    index: Any,
    loaded: dict[str, Any],
    context: dict[str, Any],
) -> dict[str, Any]:
    run = context["dag_run"]
    rows = error_rows(integration, index, loaded)
    location = write_error_log(dag_id, run.run_id, error_csv(rows))
    calls = {
        "kandji": extracted.get("calls", 0),
        "oomnitza": loaded.get("calls", 0),
    }
    started = (run.start_date or run.run_after).timestamp()
    summary = summarise(
        integration,
        source_count=extracted["count"],
        frame=index,
        software=extracted.get("software"),
        loaded=loaded,
        calls=calls,
        started=started,
        error_log=location,
        error_count=len(rows),
    )
    summary["retries"] = {
        "kandji": extracted.get("retries", 0),
        "oomnitza": loaded.get("retries", 0),
    }
    print("::group::Run summary")
    for key, value in summary.items():
        log.info("%-22s %s", key, value)
    print("::endgroup::")
    log.info("Error log (%d record(s) not loaded): %s", len(rows), location)
    if loaded.get("dry_run"):
        log.info(
            "Dry run: nothing was sent. %d record(s) would be sent; first ones: %s",
            loaded.get("would_send", 0),
            loaded.get("sample"),
        )
    limit = integration.load.max_failed_records
    failures = [r for r in rows if not r["stage"].startswith("skipped")]
    skipped = len(rows) - len(failures)
    if skipped:
        log.info(
            "%d record(s) skipped by the preference (%s): listed in the error log, not counted as failures.",
            skipped,
            integration.preference.value,
        )
    summary["failures"] = len(failures)
    if not loaded.get("dry_run") and len(failures) > limit:
        context["ti"].xcom_push(key="summary", value=summary)
        raise TooManyFailures(
            f"{len(failures)} record(s) failed to load (allowed: {limit}); everything else was loaded. "
            f"Reasons per record: {location}"
        )
    return summary
