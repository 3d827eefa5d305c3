"""One DAG per integration file: only its building. Each task hands what Airflow holds to its glue in
``tasks.py`` (or an operator in ``operator.py``), which calls one plain step (``steps.py``, ``missing.py``,
``report.py``) and stores its result; the DAG's docs are ``docs.py``.

Parsing stays cheap: only the integration file is read (no network); hooks, pandas and requests are
imported inside the tasks.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, dag, task

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import default_args
from kandji_oomnitza.integrations.config import INTEGRATIONS, Integration
from kandji_oomnitza.integrations.docs import dag_doc
from kandji_oomnitza.integrations.newest_run import NewestRunOnly
from kandji_oomnitza.integrations.operator import FlagMissingOperator, OomnitzaLoadOperator
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
        doc_md=dag_doc(dag_id, integration, source),
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
            from kandji_oomnitza.integrations.tasks import extract_task

            return extract_task(integration, context["ti"])

        @task(
            task_id=names.TRANSFORM,
            multiple_outputs=False,
            task_display_name="Transform",
            show_return_value_in_logs=False,
            execution_timeout=TIMEOUTS[names.TRANSFORM],
        )
        def transform(source: Any, **context) -> Any:
            from kandji_oomnitza.integrations.tasks import transform_task

            return transform_task(integration, source, context["ti"])

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
            from kandji_oomnitza.integrations.tasks import report_task

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
