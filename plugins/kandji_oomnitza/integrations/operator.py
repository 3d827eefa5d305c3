"""The load step as an operator (so the task carries a link to the records in Oomnitza), and the software
frame's way through XCom: in parts, each one request to the Execution API."""

from __future__ import annotations

import functools
import json
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator

from kandji_oomnitza import names
from kandji_oomnitza.hooks.links import OomnitzaRecordsLink
from kandji_oomnitza.integrations.config import Integration, MissingSettings

if TYPE_CHECKING:  # the steps are imported when the task runs, not when the DAG file is parsed
    import pandas as pd

    from kandji_oomnitza.integrations.handover import MissingResult
    from kandji_oomnitza.integrations.missing import FlagDecision, MissingPlan
    from kandji_oomnitza.integrations.safeguard import Stop

# Sending a fleet in batches of 100 and waiting for Oomnitza's outcome (load.outcome_timeout_seconds, 15
# minutes by default): 100,000 devices took under 3 minutes end to end in the benchmarks.
LOAD_TIMEOUT = timedelta(hours=2)


def push_software(ti: Any, software: pd.DataFrame, rows_per_part: int | None = None) -> None:
    """The software frame as XComs ``software.0``, ``software.1``, … and ``software`` (how many): each XCom
    read or write must finish within the Execution API's timeout (5 s by default), and reading back the
    software of 100,000 devices (9.3M rows) as one XCom took about 7 s."""
    from kandji_oomnitza.integrations.software import software_parts

    parts = software_parts(software, rows_per_part)
    for number, part in enumerate(parts):
        ti.xcom_push(key=f"{names.SOFTWARE}.{number}", value=part)
    ti.xcom_push(key=names.SOFTWARE, value={"parts": len(parts), "rows": len(software)})


def pull_software(ti: Any, task_id: str = names.EXTRACT) -> pd.DataFrame | None:
    from kandji_oomnitza.integrations.software import concat_software

    head = ti.xcom_pull(task_ids=task_id, key=names.SOFTWARE)
    if head is None:
        return None
    return concat_software(
        [ti.xcom_pull(task_ids=task_id, key=f"{names.SOFTWARE}.{number}") for number in range(head["parts"])]
    )


class OomnitzaLoadOperator(BaseOperator):
    """Load an integration's transformed frame into Oomnitza through the connector protocol.

    Reads the frame from the transform's XCom and, for an assets integration with software, each
    device's apps from the extract's. With ``dry_run`` (a DAG param) it sends nothing, writes every
    payload it would have sent to an artifact and returns a preview. Each attempt uses its own Oomnitza
    run ("portion"), named from the DAG run and the try number; a retry resends every record, which
    Oomnitza matches on the sync key, so it creates no duplicates.

    Its result (XCom ``result``, a ``LoadResult``) is pushed whatever happens, before a failure is raised:
    the report reads it to account for every record, including those a broken load never sent.
    """

    operator_extra_links = (OomnitzaRecordsLink(),)
    ui_color = "#e3f1fb"

    def __init__(self, *, integration: Integration, **kwargs: Any) -> None:
        kwargs.setdefault("do_xcom_push", False)  # the result goes out under names.RESULT, failure or not
        kwargs.setdefault("execution_timeout", LOAD_TIMEOUT)
        super().__init__(**kwargs)
        self.integration = integration
        self.oomnitza_conn_id = integration.oomnitza_conn_id
        self.data_type = integration.type

    def _delta_plan(self, read_at: str, forced: bool) -> tuple[Any, Any]:
        """The run's delta plan (None when delta loads are off) and where its store lives."""
        if not self.integration.delta.enabled:
            return None, None
        from kandji_oomnitza.integrations.delta import DeltaPlan, full_sync_reason, read_store, store_path
        from kandji_oomnitza.integrations.storage import reports_root

        path = store_path(reports_root(), self.dag_id)
        store, problem = read_store(path, read_at)
        if problem:
            self.log.warning("Delta load: %s; this run sends every record", problem)
        reason = full_sync_reason(self.integration, store, problem, read_at, forced)
        self.log.info("Delta load: %s", f"full sync, {reason}" if reason else "only changed records are sent")
        return DeltaPlan(self.integration, store, reason, read_at), path

    def execute(self, context) -> None:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.integrations.handover import ExtractStats, FieldCheck
        from kandji_oomnitza.integrations.steps import dry_run, load
        from kandji_oomnitza.integrations.storage import DRY_RUN_PAYLOADS, write_artifact

        ti = context["ti"]
        started = time.monotonic()
        frame = ti.xcom_pull(task_ids=names.TRANSFORM)
        software = pull_software(ti) if self.integration.type == "assets" else None
        self.log.info(
            "Read %d transformed record(s)%s from XCom in %.1fs",
            len(frame),
            f" and {len(software)} software row(s)" if software is not None else "",
            time.monotonic() - started,
        )
        stats = ExtractStats.require(ti.xcom_pull(task_ids=names.EXTRACT, key=names.STATS), names.EXTRACT)
        delta, store_at = self._delta_plan(stats.read_at, bool(context["params"].get("full_sync")))
        if context["params"].get("dry_run"):
            result = dry_run(
                self.integration,
                frame,
                software,
                lambda lines: write_artifact(self.dag_id, ti.run_id, DRY_RUN_PAYLOADS, lines),
                delta,
            )
            ti.xcom_push(key=names.RESULT, value=result.to_xcom())
            return
        checked = FieldCheck.from_xcom(ti.xcom_pull(task_ids=names.CHECK_FIELDS))
        portion = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dag_id}/{ti.run_id}/{ti.try_number}"))
        result, failure = load(
            self.integration,
            OomnitzaHook(self.oomnitza_conn_id),
            frame,
            software=software,
            portion=portion,
            delta=delta,
        )
        result.calls += checked.calls if checked is not None else 0
        if delta is not None and delta.store is not None:
            from kandji_oomnitza.integrations.delta import write_store

            write_store(store_at, delta.store)  # only now: it holds what Oomnitza confirmed
        ti.xcom_push(key=names.RESULT, value=result.to_xcom())
        if failure is not None:
            self.log.error(
                "The load stopped after %d of %d record(s) were sent: %s. Oomnitza's run %s was finalized "
                "so its log closes; the report lists every record not loaded.",
                result.sent,
                result.records,
                result.failure,
                portion,
            )
            raise failure


class FlagMissingOperator(HITLOperator):
    """``flag_missing``: flag the records gone from Kandji (see missing.py). When a safeguard stops the
    flagging (safeguard.py), the task asks a person through Airflow's human-in-the-loop and waits, parked
    under Required Actions, showing the count, the limit and the first records; resumed by Airflow with its
    own record of the answer, it flags the records asked about that are still gone (Approve) or nothing
    (Reject, or no answer within ``confirm_within``). The records asked about are kept in the reports
    storage and bound to the answer by their digest, a field of the question that Airflow records with the
    answer: nothing another user or task can write confirms anything, and a cleared run asks again.

    Its result (XCom ``missing``) is pushed before any failure is raised, so the report accounts for it."""

    # Built from records (names anyone could type): never rendered as templates.
    template_fields = ()
    ui_color = "#fcf3cf"

    def __init__(self, *, integration: Integration, **kwargs: Any) -> None:
        from kandji_oomnitza.common.approval import APPROVE_OPTION, REJECT_OPTION, assigned_users

        kwargs.setdefault("retries", 0)  # a retry would ask again, or flag again: both are a person's call
        super().__init__(
            subject="(set when a safeguard asks)",
            options=[APPROVE_OPTION, REJECT_OPTION],
            defaults=REJECT_OPTION,
            assigned_users=assigned_users(integration.confirmers),
            response_timeout=integration.confirm_within,
            notifiers=_safeguard_notifiers(integration),
            **kwargs,
        )
        self.integration = integration

    # -- what Airflow calls ---------------------------------------------------------------------------
    def execute(self, context) -> None:
        from kandji_oomnitza.integrations.handover import MissingResult
        from kandji_oomnitza.integrations.missing import dry_run_result

        run = self._prepare(context)
        decision = run.decide()
        if isinstance(decision, MissingResult):  # the listing cannot be trusted: nothing is flagged
            return run.done(decision.model_copy(update={"dry_run": run.dry_run}))
        if run.dry_run:
            return run.done(dry_run_result(run.settings, decision))
        if decision.stop is None:
            return run.send(decision.plan)
        if not decision.plan.to_flag:  # the listing shrank, but nothing is to be flagged: nothing to ask
            return run.done(decision.plan, stop=decision.stop)
        self._ask(context, run, decision.plan, decision.stop)
        return HITLOperator.execute(self, context)  # parked under Required Actions until the answer

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> None:
        # ``event`` is not an XCom: Airflow built it from this task's human-in-the-loop record, with the user
        # its API server authenticated (or, at the timeout, the default answer by nobody).
        from kandji_oomnitza.common.approval import read_answer
        from kandji_oomnitza.integrations.handover import MissingResult
        from kandji_oomnitza.integrations.missing import stopped_result
        from kandji_oomnitza.integrations.safeguard import plan_path, read_plan

        run = self._prepare(context)
        answer = read_answer(
            event, self.integration.confirmers, self.integration.confirm_within, "the confirmers"
        )
        decision = run.decide()
        asked = read_plan(plan_path(run.root, self.dag_id, run.folder, context["ti"].try_number))
        if answer.approved_by is not None and asked is None:
            answer = type(answer)(
                None, "the list of records asked about could not be read back", failure=True
            )
        elif answer.approved_by is not None and _digest(asked) != _answered_digest(event):
            answer = type(answer)(
                None, "the records asked about are not the ones the answer was given for", failure=True
            )
        if isinstance(decision, MissingResult):
            return run.done(decision)
        if answer.approved_by is None or asked is None:
            if decision.stop is None:  # asked, but no longer over any limit: nothing to hold back
                self.log.warning("Not confirmed (%s), and no safeguard stops this plan now", answer.why_not)
            stop = decision.stop or run.asked_stop(asked)
            result = stopped_result(run.settings, decision.plan, stop, answer.why_not or "not confirmed")
            return run.done(result, fail=stop.fails_the_run or answer.failure)
        from kandji_oomnitza.common.approval import not_running_any_more

        if state := not_running_any_more(context):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"Confirmed by {answer.approved_by}, but Airflow's record marks this task {state}, not running "
                "(Airflow 3.3's scheduler can fail a task answered seconds after it parked): nothing was flagged. "
                "Clear the task to ask again."
            )
        decision.plan.to_flag = [e for e in decision.plan.to_flag if e["kandji_id"] in asked]
        self.log.info(
            "Confirmed by %s (Airflow's record of the answer): %d of the %d record(s) asked about are still gone "
            "and are flagged now",
            answer.approved_by,
            len(decision.plan.to_flag),
            len(asked),
        )
        return run.send(decision.plan, confirmation=answer.approved_by)

    # -- the question ----------------------------------------------------------------------------------
    def _ask(self, context, run: FlaggingRun, plan: MissingPlan, stop: Stop) -> None:
        from airflow.sdk.definitions.param import Param, ParamsDict

        from kandji_oomnitza.integrations.safeguard import plan_path, question, write_plan

        entries = plan.to_flag
        write_plan(plan_path(run.root, self.dag_id, run.folder, context["ti"].try_number), entries)
        self.subject, self.body = question(run.settings, stop, entries)
        ids = {e["kandji_id"] for e in entries}
        # The digest of the records asked about, recorded by Airflow with the answer: what binds a
        # confirmation to these records (leave it as it is; any other value confirms nothing).
        self.params = ParamsDict(
            {
                DIGEST_PARAM: Param(
                    _digest(ids),
                    type="string",
                    title="Records asked about (leave as it is)",
                    description=f"{len(ids)} record(s): the digest of the list this question shows",
                )
            }
        )
        self.log.warning("%s Asking a person under Required Actions.", stop.message)

    def _prepare(self, context) -> FlaggingRun:
        from kandji_oomnitza.integrations.safeguard import RETIRED_PARAM

        if context["params"].get(RETIRED_PARAM) or (context["dag_run"].conf or {}).get(RETIRED_PARAM):
            self.log.warning(
                "%s no longer lifts the safeguards: a person confirms under Required Actions when one stops "
                "the flagging",
                RETIRED_PARAM,
            )
        return FlaggingRun(self.integration, self.dag_id, context, self.log)


DIGEST_PARAM = "records"


def _digest(ids: set[str] | None) -> str:
    import hashlib

    listed = sorted(ids or ())
    return f"{len(listed)} records, sha256 {hashlib.sha256(json.dumps(listed).encode()).hexdigest()[:24]}"


def _answered_digest(event: Any) -> Any:
    return ((event or {}).get("params_input") or {}).get(DIGEST_PARAM) if isinstance(event, dict) else None


def _safeguard_notifiers(integration: Integration) -> list[Any]:
    """Airflow's human-in-the-loop notifiers: the ``notify.on_safeguard`` targets hear, once each time the task
    asks (a cleared run that asks again tells again), with the link to Required Actions."""
    if integration.notify is None or not integration.notify.on_safeguard:
        return []
    from kandji_oomnitza.common.notify import SettingsNotifier
    from kandji_oomnitza.integrations.notices import safeguard_asking_notice

    return [
        SettingsNotifier(
            integration.notify.on_safeguard, functools.partial(safeguard_asking_notice, integration)
        )
    ]


class FlaggingRun:
    """What one attempt of ``flag_missing`` reads (this run's listing and ids, the last listing that
    flagged) and writes (its result, the listing the next run compares with)."""

    def __init__(self, integration: Integration, dag_id: str, context: dict[str, Any], log: Any) -> None:
        from kandji_oomnitza.integrations.handover import ExtractStats
        from kandji_oomnitza.integrations.storage import reports_root, run_folder

        self.integration, self.dag_id, self.context, self.log = integration, dag_id, context, log
        settings = integration.missing_settings
        if settings is None:  # build_dag adds this task only for an integration with when_missing
            raise ValueError(f"{integration.name}: flag_missing runs only with when_missing set")
        self.settings: MissingSettings = settings
        self.ti = context["ti"]
        self.dry_run = bool(context["params"].get("dry_run"))
        self.root = reports_root()
        self.folder = run_folder(self.ti.run_id)
        stats = self.ti.xcom_pull(task_ids=names.EXTRACT, key=names.STATS)
        self._check_sealed(names.EXTRACT, stats, "the listing's size and read time")
        self.stats = ExtractStats.require(stats, names.EXTRACT)

    def _check_sealed(self, task_id: str, value: Any, what: str) -> None:
        """Refuse a hand-over changed after its task wrote it (an XCom edited through the REST API)."""
        from airflow.sdk.exceptions import AirflowFailException

        from kandji_oomnitza.common.seal import changed_since_sealed
        from kandji_oomnitza.integrations.steps import handover_seal_scope

        scope = handover_seal_scope(self.ti.dag_id, self.ti.run_id, task_id)
        stored = self.ti.xcom_pull(task_ids=task_id, key=names.HANDOVER_SEAL)
        if problem := changed_since_sealed(scope, value, stored):
            raise AirflowFailException(
                f"What {task_id} handed over ({what}) cannot be trusted: {problem}. Someone allowed to edit this "
                "DAG's task instances can change an XCom through Airflow's REST API (SECURITY.md). Nothing was "
                "flagged; run the DAG again for a new listing."
            )

    def decide(self) -> FlagDecision | MissingResult:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.integrations.missing import cutoff_of, decide
        from kandji_oomnitza.integrations.safeguard import history_path, read_previous
        from kandji_oomnitza.integrations.steps import seen_ids as listed_ids

        index = self.ti.xcom_pull(task_ids=names.TRANSFORM, key=names.INDEX)
        seen_ids = listed_ids(index)
        self._check_sealed(names.TRANSFORM, sorted(seen_ids), "the Kandji ids this run listed")
        if self.integration.delta.enabled:
            # Under delta loads an unchanged record is not sent, so its Connector Sync Time in Oomnitza ages
            # while Kandji still lists it: when it was last seen comes from the fingerprint store.
            from kandji_oomnitza.integrations.delta import last_seen_after, read_store, store_path

            store, _ = read_store(store_path(self.root, self.dag_id), self.stats.read_at)
            cutoff = cutoff_of(self.stats.read_at, self.settings.when_missing.after_days)
            seen_ids |= last_seen_after(store, cutoff)
        previous, problem = read_previous(history_path(self.root, self.dag_id), self.stats.read_at)
        if problem:
            self.log.warning(
                "The listing-shrink safeguard is skipped this run: %s (max_flagged still holds)", problem
            )
        self.oomnitza = OomnitzaHook(self.integration.oomnitza_conn_id)
        return decide(
            self.settings,
            self.oomnitza,
            seen_ids=seen_ids,
            read_at=self.stats.read_at,
            listing=self.stats.listing,
            previous=previous,
        )

    def asked_stop(self, asked: set[str] | None) -> Stop:
        """A stop to report when the plan asked about no longer trips a safeguard (the answer still says no)."""
        from kandji_oomnitza.integrations.safeguard import MAX_FLAGGED, Stop

        return Stop(MAX_FLAGGED, f"A safeguard stopped the flagging of {len(asked or ())} record(s).")

    def send(self, plan: MissingPlan, confirmation: str | None = None) -> None:
        from kandji_oomnitza.integrations.missing import flag

        portion = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL, f"{self.dag_id}/{self.ti.run_id}/{self.ti.try_number}/when_missing"
            )
        )
        result, failure = flag(self.settings, self.oomnitza, plan, portion=portion, confirmation=confirmation)
        self.done(result, failure=failure)

    def done(
        self,
        result: MissingResult | MissingPlan,
        *,
        stop: Stop | None = None,
        fail: bool = False,
        failure: BaseException | None = None,
    ) -> None:
        """Push the result (a plan that was not sent becomes a result first); keep this listing for the next
        run's shrink check when it was acted on; raise the failure, if any, after both."""
        from kandji_oomnitza.exceptions import SafeguardStopped
        from kandji_oomnitza.integrations.handover import MissingResult
        from kandji_oomnitza.integrations.missing import flag_nothing
        from kandji_oomnitza.integrations.safeguard import history_path, write_listing

        if not isinstance(result, MissingResult):
            result = flag_nothing(self.settings, result, stop)
        self.ti.xcom_push(key=names.MISSING, value=result.to_xcom())
        if not result.dry_run and result.safeguard is None and self.stats.listing.complete:
            write_listing(history_path(self.root, self.dag_id), self.stats.listing, self.stats.read_at)
        if failure is not None:
            raise failure
        if fail:
            raise SafeguardStopped(result.safeguard or "a safeguard stopped the flagging")
