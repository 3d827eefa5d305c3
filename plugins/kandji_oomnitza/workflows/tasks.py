"""What a workflow DAG's tasks do that is glue, not a step: read what Airflow holds (the run's asset events,
the watcher's state in the asset state store, the tasks' XComs), hand it to the plain steps (steps.py),
store their result. Imported when a task runs, never when the DAG file is parsed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset

from kandji_oomnitza import names
from kandji_oomnitza.common.seal import unseal
from kandji_oomnitza.workflows import steps
from kandji_oomnitza.workflows.config import Workflow
from kandji_oomnitza.workflows.handover import SentMark
from kandji_oomnitza.workflows.state import CLAIM_PREFIX, SENT_PREFIX, STATE_KEY, sealed_under

DUPLICATE_WINDOW = timedelta(days=7)  # how far back a repeated event's first sending is looked for


# -- the tasks' Airflow side: what Airflow holds in, plain values out -----------------------------------
def _events(events: Any) -> list[steps.EventView]:
    """Asset events as plain values; one that triggered this run has no ``created_dagruns`` of its own
    to read: it started this run."""
    return sorted(
        (
            steps.EventView(e.timestamp, dict(e.extra or {}), bool(getattr(e, "created_dagruns", True)))
            for e in events
        ),
        key=lambda e: e.timestamp,
    )


def prepare_task(workflow: Workflow, asset: Asset, context: dict[str, Any]) -> list[steps.Item]:
    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza.hooks.kandji import KandjiHook
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    triggering = context.get("triggering_asset_events") or {}
    events = _events(triggering.get(asset, []))
    if not events:
        steps.log.warning(
            "This run carries no event from the workflow's trigger (was it started by hand?): nothing to do."
        )
    elif workflow.write_back:  # before any entry is claimed: a failure here retries them all
        known = OomnitzaHook(workflow.trigger.connection).field_metadata("assets")
        if unknown := steps.unknown_write_back_fields(workflow, known):
            raise AirflowFailException(
                f"write_back names {', '.join(unknown)}, which Oomnitza's assets do not have: create the field "
                "in Oomnitza (its external id must match) or fix the workflow file. Nothing was sent."
            )
    store = context["asset_state_store"][asset]
    earlier = (
        _events(context["inlet_events"][asset].after((events[0].timestamp - DUPLICATE_WINDOW).isoformat()))
        if events
        else []
    )
    claimed = {"run_id": context["run_id"], "at": datetime.now(UTC).isoformat(timespec="seconds")}
    state, forged = unseal(sealed_under(asset.name, STATE_KEY), store.get(STATE_KEY))
    if forged:  # then no entry is the watcher's: each is reported as not produced by it, none is claimed
        steps.log.error(
            "The workflow's state in Airflow's asset state store is not the one its watcher wrote: %s. Nothing "
            "in this run's events is acted on. Either someone allowed to edit assets wrote it (SECURITY.md), or "
            "this worker and the triggerer seal with different keys: set the same [kandji_oomnitza] "
            "state_seal_key (or [core] fernet_key) on both.",
            forged,
        )
    prepared = steps.prepare(
        workflow,
        events,
        state,
        earlier=earlier,
        kandji=KandjiHook(workflow.action.kandji_connection),
        claim=lambda key: store.set(CLAIM_PREFIX + key, claimed),
    )
    context["ti"].xcom_push(key=names.PROBLEMS, value=prepared.problems)
    context["ti"].xcom_push(key=names.DUPLICATES, value=prepared.duplicates)
    return prepared.items


def summary_task(workflow: Workflow, asset: Asset, items: list[steps.Item] | None, context) -> dict[str, Any]:
    """Fails the run when a record could not be acted on, so it shows red in the grid."""
    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza.presets.handover import ActionResult

    ti = context["ti"]
    if items is None:  # prepare always returns a list: None means it failed
        raise AirflowFailException(
            "prepare did not finish (see its log): nothing was sent. The entries it had not claimed yet are "
            "sent again by the trigger after 15 minutes, and a new run tries once more."
        )
    indexes = list(range(len(items)))

    def pulled(key: str) -> list[Any]:
        if not indexes:
            return []
        values = ti.xcom_pull(task_ids=names.WORKFLOW_ACTION, map_indexes=indexes, key=key)
        values = values if isinstance(values, list) else [values]
        return values + [None] * (len(indexes) - len(values))

    store = context["asset_state_store"][asset]
    marks = [
        SentMark.read(unseal(sealed_under(asset.name, SENT_PREFIX + key), store.get(SENT_PREFIX + key))[0])
        for key in (item["request"]["key"] for item in items)
    ]
    summary = steps.summarize(
        workflow,
        context["dag"].dag_id,
        items,
        ti.xcom_pull(task_ids=names.PREPARE, key=names.PROBLEMS) or [],
        ti.xcom_pull(task_ids=names.PREPARE, key=names.DUPLICATES) or [],
        actions=[ActionResult.read(value) for value in pulled(names.RETURN_VALUE)],
        stopped=pulled(names.NOT_SENT),
        marks=[m if m is not None and m.run_id == context["run_id"] else None for m in marks],
    )
    ti.xcom_push(key=names.SUMMARY, value=summary.to_xcom())
    if summary.failure:
        raise AirflowFailException(summary.failure)
    return summary.to_xcom()
