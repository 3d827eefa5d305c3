"""One DAG per integration file. The DAG is thin: each task calls one step in ``integration.py``.

Parsing stays cheap: only the integration file is read (no network); hooks, pandas and requests are
imported inside the tasks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, dag, task

from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.newest_run import SKIPPED_KEY, NewestRunOnly
from kandji_oomnitza.integrations.operator import OomnitzaLoadOperator
from kandji_oomnitza.settings_files import INTEGRATIONS, scan

log = logging.getLogger(__name__)
KANDJI_POOL = "kandji_api"
STATS, INDEX, SOFTWARE, MISSING = "stats", "index", "software", "missing"
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def _timetable(integration: Integration):
    from airflow.sdk import CronTriggerTimetable

    if integration.schedule.cron is None:
        return None
    return CronTriggerTimetable(integration.schedule.cron, timezone=integration.schedule.timezone)


def _doc(dag_id: str, integration: Integration, source: Path) -> str:
    what = (
        "Kandji devices (and their installed software) → Oomnitza **assets**"
        if integration.type == "assets"
        else "Kandji directory users → Oomnitza **users**"
    )
    software = ""
    if integration.type == "assets":
        s = integration.software_settings
        software = f"- Software: {'on, route ' + s.route.value if s.enabled else 'off'}\n"
    else:
        software = f"- User selection: {integration.user_settings.selection.value}\n"
    mappings = "\n".join(f"| `{t}` | {integration.resolved(t).label} |" for t in integration.mappings)
    return f"""
# {integration.name}

{integration.description or what}

Defined by `{source.name}` (edit the file to change anything below; a mistake shows as an import error
naming the file, the field and the fix).

- Flow: {what}
- Preference: **{integration.preference.value}**; sync key: `{", ".join(integration.sync_key)}`
{software}- Schedule: `{integration.schedule.cron or "manual only"}` ({integration.schedule.timezone})
- Connections: `{integration.kandji_conn_id}` (Kandji), `{integration.oomnitza_conn_id}` (Oomnitza)
- Records gone from Kandji: {integration.when_missing_words}

**Every run is a full, idempotent snapshot of Kandji as it is when the run reads it**: Oomnitza matches
records on the sync key, so a rerun or a retry creates no duplicates, and Connector Sync Time is the
time Kandji was read (never the logical date). Because of that, only the newest run syncs: a scheduled
or backfill run skips itself ("Newest run only") when a newer run exists, so a backfill
(`airflow backfill create --dag-id {dag_id} ...` or Trigger → Backfill) does one real sync, for its
newest date, or none when a newer run already synced, and old dates never overwrite newer data. Runs
never overlap: a run waits while an earlier one is still running. Manual runs always sync.

**Trigger with `dry_run: true`** to run everything but the load: the report shows what would be sent.

**Results**: the `report` task logs a summary (Kandji records, sent, added, updated, unchanged, skipped,
failed, calls) and writes the error log (every record not loaded, with its reason) as a CSV at the
path it prints. The run fails when more than {integration.load.max_failed_records} record(s) were not
loaded, after everything else was loaded.

| Oomnitza field | Kandji source |
|---|---|
{mappings}
"""


def build_dag(dag_id: str, integration: Integration, source: Path) -> DAG:
    tags = ["kandji", "oomnitza", integration.type, *integration.tags]

    @dag(
        dag_id=dag_id,
        dag_display_name=integration.name,
        description=integration.description or integration.name,
        schedule=_timetable(integration),
        start_date=pendulum.datetime(2026, 1, 1, tz=integration.schedule.timezone),
        catchup=False,
        max_active_runs=1,
        tags=list(dict.fromkeys(tags)),
        doc_md=_doc(dag_id, integration, source),
        default_args={**DEFAULT_ARGS, "owner": integration.owner},
        params={
            "dry_run": Param(
                False,
                type="boolean",
                title="Dry run",
                description="Extract and transform, but send nothing to Oomnitza; the report shows what would be sent.",
            ),
            "full_sync": Param(
                False,
                type="boolean",
                title="Full sync",
                description="With delta loads on: send every record, changed or not.",
            ),
        },
    )
    def integration_dag() -> None:
        @task(task_display_name="Check Oomnitza fields")
        def check_oomnitza_fields() -> dict[str, Any]:
            from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
            from kandji_oomnitza.integrations.steps import check_fields

            return check_fields(integration, OomnitzaHook(integration.oomnitza_conn_id))

        # The frames travel as XComs of their own (the devices as extract's return value, the software
        # in parts under "software.N"); the small facts the report needs travel apart ("stats",
        # "index"), so the report never loads a fleet's worth of data again.
        @task(pool=KANDJI_POOL, task_display_name="Extract from Kandji", show_return_value_in_logs=False)
        def extract(**context) -> Any:
            from kandji_oomnitza.common.redaction import redact_value
            from kandji_oomnitza.hooks.kandji import KandjiHook
            from kandji_oomnitza.integrations.missing import listing_completeness
            from kandji_oomnitza.integrations.software import push_software
            from kandji_oomnitza.integrations.steps import extract_assets, extract_users

            # Connector Sync Time is when Kandji was read: taken here, once, and reused by the later
            # tasks and their retries (a retried extract reads Kandji again, and takes a new time).
            read_at = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
            kandji = KandjiHook(integration.kandji_conn_id)
            software = None
            if integration.type == "assets":
                frame, software = extract_assets(integration, kandji)
            else:
                frame = extract_users(integration, kandji)
            stats = {
                "read_at": read_at,
                "calls": kandji.calls,
                "retries": kandji.retries,
                "count": len(frame),
                "software": software.summary() if software else None,
                "listing": listing_completeness(integration, len(frame), kandji.device_total),
            }
            if software is not None:
                log.info("Software: %s", stats["software"])
                push_software(context["ti"], SOFTWARE, software.frame())
            context["ti"].xcom_push(key=STATS, value=redact_value(stats))
            return frame

        @task(task_display_name="Transform", show_return_value_in_logs=False)
        def transform(source: Any, **context) -> Any:
            from kandji_oomnitza.integrations.steps import report_index
            from kandji_oomnitza.integrations.steps import transform as transform_step

            stats = context["ti"].xcom_pull(task_ids="extract", key=STATS)
            frame = transform_step(integration, source, stats["read_at"])
            context["ti"].xcom_push(key=INDEX, value=report_index(integration, frame))
            return frame

        @task(task_display_name="Flag records gone from Kandji")
        def flag_missing(**context) -> None:
            """Runs after a load that went through (a dry run included); see missing.py."""
            from kandji_oomnitza.integrations.missing import flag_missing_task

            flag_missing_task(
                integration, dag_id, context, stats_key=STATS, index_key=INDEX, result_key=MISSING
            )

        # The report runs whatever happened upstream, so every record is accounted for even when the
        # load broke part-way, and it fails the run when anything was not loaded.
        @task(task_display_name="Report", trigger_rule=TriggerRule.ALL_DONE, retries=0)
        def report(**context) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowSkipException

            from kandji_oomnitza.integrations.operator import RESULT_KEY
            from kandji_oomnitza.integrations.report import publish_report

            ti = context["ti"]
            skipped = ti.xcom_pull(task_ids="newest_run_only", key=SKIPPED_KEY)
            if skipped:
                raise AirflowSkipException(skipped)
            return publish_report(
                integration,
                dag_id,
                checked=ti.xcom_pull(task_ids="check_oomnitza_fields"),
                extracted=ti.xcom_pull(task_ids="extract", key=STATS),
                index=ti.xcom_pull(task_ids="transform", key=INDEX),
                loaded=ti.xcom_pull(task_ids="load", key=RESULT_KEY),
                missing=ti.xcom_pull(task_ids="flag_missing", key=MISSING),
                context=context,
            )

        # Snapshot semantics (see sensors/newest_run.py): only the newest run syncs, and runs never overlap.
        guard = NewestRunOnly(task_id="newest_run_only", task_display_name="Newest run only")
        checked = check_oomnitza_fields()
        extracted = extract()
        guard >> [checked, extracted]
        frame = transform(extracted)
        load = OomnitzaLoadOperator(
            task_id="load",
            task_display_name="Load into Oomnitza",
            integration=integration,
            transform_task_id="transform",
            check_task_id="check_oomnitza_fields",
            software_xcom=("extract", SOFTWARE) if integration.type == "assets" else None,
        )
        [checked, frame] >> load
        # Upstream of the report directly, so it waits for each of them to finish, whatever their state.
        flagged = [load >> flag_missing()] if integration.when_missing is not None else []
        [checked, extracted, frame, load, *flagged] >> report()

    return integration_dag()


def build_all(folder: Path | None = None) -> dict[str, DAG]:
    """A DAG per valid integration file. Invalid files are left out here, so one broken file cannot take
    the other integrations down; ``dags/kandji_integration_file_errors.py`` reports them."""
    return {
        entry.dag_id: build_dag(entry.dag_id, entry.model, entry.path)
        for entry in scan(INTEGRATIONS, folder)
        if entry.model is not None
    }
