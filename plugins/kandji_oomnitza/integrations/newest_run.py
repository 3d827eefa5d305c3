"""Snapshot semantics for the integration DAGs: every run reads Kandji as it is *now*, whatever its
logical date, so replaying old dates has nothing to add.

The first task of every integration run (``newest_run_only``) therefore:

1. skips the run, with a reason a person understands, when it is a scheduled or backfill run and a
   newer run of the same integration exists (queued, running or successful): the run at the next
   date of the schedule. A backfill over N days then does one real sync (its newest date), or none
   when a newer scheduled run already synced, and old dates never overwrite newer data. Manual runs
   always go ahead: someone asked for them.
2. waits (a sensor in reschedule mode: no worker slot held) while an earlier run of the same
   integration is still running, so two runs never overlap, backfills included (Airflow bounds
   backfill runs by the backfill's own max_active_runs, not the DAG's). Only later runs wait for
   earlier ones, so two runs can never wait for each other.

Connector Sync Time is the time the run read Kandji (taken by its extract), never the logical date.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from kandji_oomnitza import names

log = logging.getLogger(__name__)
ACTIVE_STATES = ["queued", "running", "success"]


def next_scheduled_date(dag: Any, logical_date: datetime) -> datetime | None:
    """The schedule's next date after ``logical_date`` (None for a DAG without a schedule)."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    if not getattr(timetable, "periodic", False):
        return None
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(
            pendulum.instance(logical_date), pendulum.instance(logical_date)
        ),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    return info.logical_date if info else None


def newer_run(context: dict[str, Any]) -> str | None:
    """Why this run should not sync, in words, or None when it is the newest (or was asked for by hand)."""
    run = context["dag_run"]
    if str(run.run_type) in ("manual", "DagRunType.MANUAL") or run.logical_date is None:
        return None
    following = next_scheduled_date(context["dag"], run.logical_date)
    if following is None:
        return None
    count = context["ti"].get_dr_count(dag_id=run.dag_id, logical_dates=[following], states=ACTIVE_STATES)
    if not count:
        return None
    return (
        f"Skipped: a newer run of this integration exists (logical date {following.isoformat()}). Every run "
        "syncs Kandji as it is now, so an older date has nothing to add, and only the newest run reads Kandji. "
        "To sync now, trigger the DAG."
    )


def earlier_run_still_running(context: dict[str, Any]) -> str | None:
    """The id of an earlier run of this integration that is still running, if any."""
    earlier = context["ti"].get_previous_dagrun(state="running")
    return earlier.run_id if earlier is not None else None


class NewestRunOnly(BaseSensorOperator):
    """The first task of an integration run: skip when a newer run exists, wait while an earlier one
    runs (reschedule mode: no worker slot is held while waiting). The reason for a skip is pushed as
    XCom ``skipped``, so the report says it too."""

    ui_color = "#e9ffdb"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", timedelta(hours=12))
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)

    def poke(self, context) -> bool:
        from airflow.sdk.exceptions import AirflowSkipException

        reason = newer_run(context)
        if reason:
            context["ti"].xcom_push(key=names.SKIPPED, value=reason)
            raise AirflowSkipException(reason)
        earlier = earlier_run_still_running(context)
        if earlier:
            log.info("Waiting for the earlier run %s of this integration to finish first", earlier)
        return earlier is None
