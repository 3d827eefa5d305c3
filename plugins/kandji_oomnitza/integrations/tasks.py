"""What an integration DAG's tasks do that is glue, not a step: read what Airflow holds (the run, the
hand-overs), call the plain step (steps.py, report.py), store its result. Imported when a task runs, never
when the DAG file is parsed."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from kandji_oomnitza import names
from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.operator import push_software

log = logging.getLogger(__name__)


# -- the tasks' Airflow side: what Airflow holds in, plain values out -----------------------------------
def extract_task(integration: Integration, ti: Any) -> Any:
    from kandji_oomnitza.hooks.kandji import KandjiHook
    from kandji_oomnitza.integrations.handover import ExtractStats
    from kandji_oomnitza.integrations.missing import listing_completeness
    from kandji_oomnitza.integrations.steps import extract_assets, extract_users

    # Connector Sync Time is when Kandji was read: taken here, once, and reused by the later tasks and
    # their retries (a retried extract reads Kandji again, and takes a new time).
    read_at = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
    kandji = KandjiHook(integration.kandji_conn_id)
    software = None
    if integration.type == "assets":
        frame, software = extract_assets(integration, kandji)
    else:
        frame = extract_users(integration, kandji)
    stats = ExtractStats(
        read_at=read_at,
        calls=kandji.calls,
        retries=kandji.retries,
        count=len(frame),
        software=software.summary() if software else None,
        listing=listing_completeness(integration.type, len(frame), kandji.device_total),
    )
    if software is not None:
        log.info("Software: %s", stats.software)
        push_software(ti, software.frame())
    ti.xcom_push(key=names.STATS, value=stats.to_xcom())
    if integration.when_missing is not None:  # flag_missing decides on it: see steps.handover_seal_scope
        from kandji_oomnitza.common.seal import seal_of
        from kandji_oomnitza.integrations.steps import handover_seal_scope

        scope = handover_seal_scope(ti.dag_id, ti.run_id, names.EXTRACT)
        ti.xcom_push(key=names.HANDOVER_SEAL, value=seal_of(scope, stats.to_xcom()))
    return frame


def transform_task(integration: Integration, source: Any, ti: Any) -> Any:
    """The extract's frame mapped into Oomnitza records; the report's index beside it (XCom ``index``), and
    with when_missing the seal over the Kandji ids it saw (flag_missing decides on them)."""
    from kandji_oomnitza.integrations.handover import ExtractStats
    from kandji_oomnitza.integrations.steps import report_index
    from kandji_oomnitza.integrations.steps import transform as transform_step

    stats = ExtractStats.require(ti.xcom_pull(task_ids=names.EXTRACT, key=names.STATS), names.EXTRACT)
    frame = transform_step(integration, source, stats.read_at)
    index = report_index(integration, frame)
    ti.xcom_push(key=names.INDEX, value=index)
    if integration.when_missing is not None:
        from kandji_oomnitza.common.seal import seal_of
        from kandji_oomnitza.integrations.steps import handover_seal_scope, seen_ids

        scope = handover_seal_scope(ti.dag_id, ti.run_id, names.TRANSFORM)
        ti.xcom_push(key=names.HANDOVER_SEAL, value=seal_of(scope, sorted(seen_ids(index))))
    return frame


def report_task(integration: Integration, dag_id: str, context: dict[str, Any]) -> dict[str, Any]:
    """Every record accounted for, the error log written, the summary published (as the return value, or,
    when the run fails, as XCom ``summary``: a failed task has no return value)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from kandji_oomnitza.integrations.handover import ExtractStats, FieldCheck, LoadResult, MissingResult
    from kandji_oomnitza.integrations.report import build_report, log_report
    from kandji_oomnitza.integrations.storage import ERROR_LOG, write_artifact

    ti, run = context["ti"], context["dag_run"]
    if skipped := ti.xcom_pull(task_ids=names.NEWEST_RUN_ONLY, key=names.SKIPPED):
        raise AirflowSkipException(skipped)
    began = run.start_date or run.run_after
    loaded = LoadResult.from_xcom(ti.xcom_pull(task_ids=names.LOAD, key=names.RESULT))
    report = build_report(
        integration,
        checked=FieldCheck.from_xcom(ti.xcom_pull(task_ids=names.CHECK_FIELDS)),
        extracted=ExtractStats.from_xcom(ti.xcom_pull(task_ids=names.EXTRACT, key=names.STATS)),
        index=ti.xcom_pull(task_ids=names.TRANSFORM, key=names.INDEX),
        loaded=loaded,
        missing=MissingResult.from_xcom(ti.xcom_pull(task_ids=names.FLAG_MISSING, key=names.MISSING)),
        started=began.timestamp() if began else time.time(),
        write_error_log=lambda text: write_artifact(dag_id, run.run_id, ERROR_LOG, [text]),
        integration_user=_integration_user(integration),
    )
    log_report(integration, report, loaded, log)
    summary = report.summary
    if report.failure_type is not None:
        ti.xcom_push(key=names.SUMMARY, value=summary.to_xcom())
        raise report.failure_type(report.failure)
    told = integration.notify.on_records_failed if integration.notify else None
    if told and not summary.dry_run and (summary.failures or summary.skipped):
        from kandji_oomnitza.common.notify import deliver
        from kandji_oomnitza.integrations.notices import records_failed_notice

        deliver(told, records_failed_notice(integration, dag_id, run.run_id, summary))
    return summary.to_xcom()


def _integration_user(integration: Integration) -> str | None:
    """The Oomnitza connection's login (its form's Integration user), for the summary; None without one."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    try:
        return OomnitzaHook(integration.oomnitza_conn_id).integration_user
    except AirflowNotFoundException:
        return None
