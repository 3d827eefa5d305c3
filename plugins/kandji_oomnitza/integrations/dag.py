"""One DAG per integration file. The DAG is thin: each task hands what Airflow holds (the run's params, the
tasks' hand-overs) to one plain step (``steps.py``, ``missing.py``, ``report.py``) and stores its result.

Parsing stays cheap: only the integration file is read (no network); hooks, pandas and requests are
imported inside the tasks.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, dag, task

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import default_args
from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT
from kandji_oomnitza.integrations.config import INTEGRATIONS, Integration
from kandji_oomnitza.integrations.newest_run import NewestRunOnly
from kandji_oomnitza.integrations.operator import FlagMissingOperator, OomnitzaLoadOperator, push_software
from kandji_oomnitza.settings_files import SettingsFile, build_each, duration_words, scan

log = logging.getLogger(__name__)
# Each attempt of a task is bounded (see common/dag_defaults.py for the retries around it). Sized from the
# benchmarks (100,000 devices: extract 9.3 min at worst under the per-device route's rate limit would be
# hours, hence the generous extract), then doubled or more: a task past these is stuck, not slow.
TIMEOUTS = {
    names.NEWEST_RUN_ONLY: timedelta(minutes=5),  # one poke (the sensor's own timeout bounds its waiting)
    names.CHECK_FIELDS: timedelta(minutes=10),
    names.EXTRACT: timedelta(hours=4),
    names.TRANSFORM: timedelta(minutes=30),
    names.FLAG_MISSING: timedelta(hours=1),
    names.REPORT: timedelta(minutes=30),
}


def _timetable(integration: Integration):
    """The schedule's first run is its next time after the DAG appears (or is unpaused), never a run of
    the last time at once: a new or unpaused integration loads nothing before its schedule says so or
    someone presses Run now (a dry run can come first). Airflow honours ``run_immediately`` only for a
    DAG without a start date, and its ``False`` still runs the last time when that was within a tenth of
    the interval: ``timedelta(0)`` means "never"."""
    from airflow.sdk import CronTriggerTimetable

    if integration.schedule.cron is None:
        return None
    return CronTriggerTimetable(
        integration.schedule.cron, timezone=integration.schedule.timezone, run_immediately=timedelta(0)
    )


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
- Notifications: {_notify_words(integration)}

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


def _notify_words(integration: Integration) -> str:
    from kandji_oomnitza.common.notify import notify_words

    words = notify_words(integration.notify)
    if integration.deadline is not None:
        words += (
            f"; deadline {duration_words(integration.deadline)} after a run is queued (told to on_failure)"
        )
    return words


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


# -- the DAG --------------------------------------------------------------------------------------------
def _params(integration: Integration) -> dict[str, Param]:
    params = {
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
    }
    return params


def _failure_notifier(integration: Integration, dag_id: str) -> Any:
    """Airflow's DAG failure callback (run by the DAG processor) as a notifier for notify.on_failure."""
    if integration.notify is None or not integration.notify.on_failure:
        return None
    from kandji_oomnitza.common.notify import SettingsNotifier
    from kandji_oomnitza.integrations.notices import failure_notice

    return SettingsNotifier(
        integration.notify.on_failure, functools.partial(failure_notice, integration, dag_id)
    )


def _deadline(integration: Integration, dag_id: str) -> Any:
    """Airflow's deadline alert: a run not finished ``deadline`` after it was queued (for a scheduled run,
    just after its scheduled time; manual runs have no scheduled time, and are held to the same) tells
    the on_failure targets, once, from the triggerer."""
    # The file's validation gives a deadline someone to tell (notify.on_failure).
    told = integration.notify.on_failure if integration.notify is not None else None
    if integration.deadline is None or not told:
        return None
    # From their own modules: airflow.sdk's type stub (__init__.pyi) does not list them (3.3.2).
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    from kandji_oomnitza.common.notify import DeadlineNotifier

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=integration.deadline,
        callback=AsyncCallback(
            DeadlineNotifier,
            kwargs={
                "targets": list(told),
                "name": integration.name,
                "deadline": duration_words(integration.deadline),
            },
        ),
    )


def build_dag(dag_id: str, integration: Integration, source: Path, register: bool = True) -> DAG:
    """The integration's DAG; ``register=False`` builds it only to see that it can be (the file-errors DAG
    file), without Airflow taking it for a DAG of the file that built it."""
    tags = ["kandji", "oomnitza", integration.type, *integration.tags]

    @dag(
        dag_id=dag_id,
        auto_register=register,
        dag_display_name=integration.name,
        description=integration.description or integration.name,
        schedule=_timetable(integration),
        catchup=False,
        max_active_runs=1,
        tags=list(dict.fromkeys(tags)),
        doc_md=_doc(dag_id, integration, source),
        default_args=default_args(
            owner=integration.owner, retry_delay=timedelta(minutes=2), max_retry_delay=timedelta(minutes=30)
        ),
        params=_params(integration),
        on_failure_callback=_failure_notifier(integration, dag_id),
        deadline=_deadline(integration, dag_id),
    )
    def integration_dag() -> None:
        # Every task hands over one value (multiple_outputs=False): a dict return annotation would have
        # Airflow push each key as an XCom of its own as well.
        @task(
            task_id=names.CHECK_FIELDS,
            multiple_outputs=False,
            task_display_name="Check Oomnitza fields",
            execution_timeout=TIMEOUTS[names.CHECK_FIELDS],
        )
        def check_oomnitza_fields() -> dict[str, Any]:
            from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
            from kandji_oomnitza.integrations.steps import check_fields

            return check_fields(integration, OomnitzaHook(integration.oomnitza_conn_id)).to_xcom()

        # The frames travel as XComs of their own (the devices as extract's return value, the software
        # in parts under "software.N"); the small facts the report needs travel apart ("stats",
        # "index"), so the report never loads a fleet's worth of data again.
        @task(
            task_id=names.EXTRACT,
            multiple_outputs=False,
            pool=names.KANDJI_POOL,
            task_display_name="Extract from Kandji",
            show_return_value_in_logs=False,
            execution_timeout=TIMEOUTS[names.EXTRACT],
        )
        def extract(**context) -> Any:
            return extract_task(integration, context["ti"])

        @task(
            task_id=names.TRANSFORM,
            multiple_outputs=False,
            task_display_name="Transform",
            show_return_value_in_logs=False,
            execution_timeout=TIMEOUTS[names.TRANSFORM],
        )
        def transform(source: Any, **context) -> Any:
            from kandji_oomnitza.integrations.handover import ExtractStats
            from kandji_oomnitza.integrations.steps import report_index
            from kandji_oomnitza.integrations.steps import transform as transform_step

            stats = ExtractStats.require(
                context["ti"].xcom_pull(task_ids=names.EXTRACT, key=names.STATS), names.EXTRACT
            )
            frame = transform_step(integration, source, stats.read_at)
            index = report_index(integration, frame)
            context["ti"].xcom_push(key=names.INDEX, value=index)
            if integration.when_missing is not None:
                from kandji_oomnitza.common.seal import seal_of
                from kandji_oomnitza.integrations.steps import handover_seal_scope, seen_ids

                ti = context["ti"]
                scope = handover_seal_scope(ti.dag_id, ti.run_id, names.TRANSFORM)
                ti.xcom_push(key=names.HANDOVER_SEAL, value=seal_of(scope, sorted(seen_ids(index))))
            return frame

        # The report runs whatever happened upstream, so every record is accounted for even when the
        # load broke part-way, and it fails the run when anything was not loaded.
        @task(
            task_id=names.REPORT,
            multiple_outputs=False,
            task_display_name="Report",
            trigger_rule=TriggerRule.ALL_DONE,
            retries=0,
            execution_timeout=TIMEOUTS[names.REPORT],
            # The report logs its summary line by line; Airflow's "Returned value was: {...}" would repeat
            # it as one Python dict, None fields included.
            show_return_value_in_logs=False,
        )
        def report(**context) -> dict[str, Any]:
            return report_task(integration, dag_id, context)

        # Snapshot semantics (see newest_run.py): only the newest run syncs, and runs never overlap.
        guard = NewestRunOnly(
            task_id=names.NEWEST_RUN_ONLY,
            task_display_name="Newest run only",
            execution_timeout=TIMEOUTS[names.NEWEST_RUN_ONLY],
        )
        checked = check_oomnitza_fields()
        extracted = extract()
        guard >> [checked, extracted]
        frame = transform(extracted)
        load = OomnitzaLoadOperator(
            task_id=names.LOAD, task_display_name="Load into Oomnitza", integration=integration
        )
        [checked, frame] >> load
        # Upstream of the report directly, so it waits for each of them to finish, whatever their state.
        flagged = []
        if integration.when_missing is not None:  # after a load that went through (a dry run included)
            flag_missing = FlagMissingOperator(
                task_id=names.FLAG_MISSING,
                task_display_name="Flag records gone from Kandji",
                integration=integration,
                # Bounds each run of its code; the wait for a person's answer is confirm_within's.
                execution_timeout=TIMEOUTS[names.FLAG_MISSING],
            )
            flagged = [load >> flag_missing]
        [checked, extracted, frame, load, *flagged] >> report()

    return integration_dag()


def build_entry(entry: SettingsFile, register: bool = True) -> DAG:
    """The DAG of one valid integration file."""
    if entry.model is None:
        raise ValueError(f"{entry.path}: not a valid integration file ({entry.error})")
    return build_dag(entry.dag_id, entry.model, entry.path, register)


def build_all(folder: Path | None = None) -> dict[str, DAG]:
    """A DAG per valid integration file, each built on its own: an invalid file, or one whose DAG cannot be
    built, is left out here, so one broken file cannot take the other integrations down;
    ``dags/kandji_integration_file_errors.py`` reports it."""
    dags, _ = build_each(INTEGRATIONS, scan(INTEGRATIONS, folder), build_entry)
    return dags
