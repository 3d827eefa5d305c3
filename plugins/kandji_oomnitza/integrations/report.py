"""The run report: a summary in the task log and XCom, and the error log as a CSV artifact.

Artifacts go to ``<reports path>/<dag_id>/<run folder>/``: ``errors.csv`` for every run, and
``dry_run_payloads.jsonl`` for a dry run. The reports path is the Airflow Variable
``kandji_oomnitza_reports_path`` (any ObjectStoragePath URL: ``s3://conn@bucket/reports``,
``file:///shared/reports``), by default ``file://$AIRFLOW_HOME/kandji_oomnitza_reports``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.steps import (
    RunIncomplete,
    TooManyFailures,
    error_csv,
    error_rows,
    missing_rows,
    summarise,
)

log = logging.getLogger(__name__)
REPORTS_VARIABLE = "kandji_oomnitza_reports_path"
ERROR_LOG = "errors.csv"
DRY_RUN_PAYLOADS = "dry_run_payloads.jsonl"


def default_reports_root() -> str:
    return "file://" + os.path.join(
        os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kandji_oomnitza_reports"
    )


def reports_root() -> str:
    """The reports path as a task sees it (the Task SDK's Variable)."""
    from airflow.sdk import Variable

    return Variable.get(REPORTS_VARIABLE, default=default_reports_root())


def run_folder(run_id: str) -> str:
    """A folder name per run id: readable, and never shared by two run ids (``run:1`` and ``run_1``
    differ in their hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def artifact_path(root: str, dag_id: str, run_id: str, name: str = ERROR_LOG):
    """Where a run's artifact lives; the Integrations page finds the error log the same way."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / run_folder(run_id) / name


def write_artifact(dag_id: str, run_id: str, name: str, chunks: Iterable[str]) -> str:
    target = artifact_path(reports_root(), dag_id, run_id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(chunk)
    return str(target)


def publish_report(
    integration: Integration,
    dag_id: str,
    *,
    checked: dict[str, Any] | None,
    extracted: dict[str, Any] | None,
    index: Any,
    loaded: dict[str, Any] | None,
    context: dict[str, Any],
    missing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Account for every record whatever happened upstream, write the error log, publish the summary,
    and fail the run when records failed beyond ``load.max_failed_records`` or a step did not finish.

    :param checked: the field check's result (None when it failed)
    :param extracted: the extract's stats (None when it failed)
    :param index: the transform's report index (None when it did not finish)
    :param loaded: the load's result (None when the load did not run)
    :param missing: the result of flagging records gone from Kandji (None when it did not run)
    """
    run = context["dag_run"]
    incomplete = _incomplete(checked, extracted, index, loaded) or _flagging_incomplete(integration, missing)
    rows = error_rows(
        integration,
        index,
        loaded,
        software_unread=((extracted or {}).get("software") or {}).get("unread"),
        not_loaded_because=incomplete,
    ) + missing_rows(integration, missing)
    location = write_artifact(dag_id, run.run_id, ERROR_LOG, [error_csv(rows)])
    warnings = [
        *((checked or {}).get("warnings") or []),
        *(((extracted or {}).get("software") or {}).get("fallbacks") or []),
        *_missing_warnings(missing),
    ]
    if loaded and loaded.get("outcome_error"):
        warnings.append(
            f"Oomnitza's outcome of run {loaded.get('portion')} could not be read, so the {loaded.get('sent')} "
            f"record(s) sent are unconfirmed ({loaded['outcome_error']})"
        )
    started = (
        (run.start_date or run.run_after).timestamp() if (run.start_date or run.run_after) else time.time()
    )
    summary = summarise(
        integration,
        extracted=extracted,
        loaded=loaded,
        rows=rows,
        warnings=warnings,
        started=started,
        error_log=location,
        missing=missing,
    )
    print("::group::Run summary")
    for key, value in summary.items():
        log.info("%-24s %s", key, value)
    print("::endgroup::")
    for warning in warnings:
        log.warning("%s", warning)
    log.info("Error log (%d record(s) listed, %d failure(s)): %s", len(rows), summary["failures"], location)
    if (loaded or {}).get("dry_run"):
        log.info(
            "Dry run: nothing was sent. %d record(s) would be sent; the first ones: %s. Every payload: %s",
            loaded.get("would_send", 0),
            loaded.get("sample"),
            loaded.get("payloads"),
        )
    skipped = sum(1 for r in rows if r["stage"].startswith("skipped"))
    if skipped:
        log.info(
            "%d record(s) skipped by the preference (%s): listed in the error log, not counted as failures.",
            skipped,
            integration.preference.value,
        )
    limit = integration.load.max_failed_records
    failure: Exception | None = None
    if incomplete:
        failure = RunIncomplete(
            f"{incomplete}. {summary['failures']} record(s) not loaded; what happened to each: {location}"
        )
    elif not summary["dry_run"] and summary["failures"] > limit:
        failure = TooManyFailures(
            f"{summary['failures']} record(s) failed to load (allowed: {limit}); everything else was loaded. "
            f"Reasons per record: {location}"
        )
    if failure is not None:
        context["ti"].xcom_push(key="summary", value=summary)  # a failed task has no return value
        raise failure
    return summary


def _incomplete(
    checked: dict[str, Any] | None,
    extracted: dict[str, Any] | None,
    index: Any,
    loaded: dict[str, Any] | None,
) -> str | None:
    """Why the run did not get through its load, in words, or None when it did."""
    if extracted is None:
        return "Kandji was not read: the extract did not finish (see its log); nothing was sent"
    if index is None:
        return "The transform did not finish (see its log); nothing was sent"
    if loaded is None:
        if checked is None:
            return "The Oomnitza field check stopped the run before loading (see its log); nothing was sent"
        return "The load did not run (see its log); nothing was sent"
    if loaded.get("failure"):
        return f"The load stopped: {shorten(loaded['failure'], 300)}"
    return None


def _flagging_incomplete(integration: Integration, missing: dict[str, Any] | None) -> str | None:
    if integration.when_missing is not None and missing is None:
        return "Flagging records gone from Kandji did not finish (see its log); everything else was loaded"
    return None


def _missing_warnings(missing: dict[str, Any] | None) -> list[str]:
    warnings = list((missing or {}).get("warnings") or [])
    if str((missing or {}).get("status", "")).startswith("skipped"):
        warnings.append(f"when_missing: nothing flagged as missing, {missing['status']}")
    return warnings
