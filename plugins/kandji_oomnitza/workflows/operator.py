"""A workflow's ``run_action``: the preset's own operator, with the workflow's last checks before sending
and its write-back after, and (``ApprovedWorkflowActionOperator``) Airflow's human-in-the-loop in front.

The approval and the action are one task on purpose: Airflow hands its record of the answer (who, and
which option, as its API server authenticated them) only to the task that asked, when it resumes it;
that record is the one proof of approval no other user or task can write. XComs can be written, and task
states set, by anyone allowed to edit the DAG's task instances; marking a task success, clearing one or
editing an XCom therefore never sends anything here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset

from kandji_oomnitza import names
from kandji_oomnitza.common.approval import APPROVE_OPTION, REJECT_OPTION, assigned_users
from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator
from kandji_oomnitza.workflows.approval import approval_decision
from kandji_oomnitza.workflows.config import Workflow
from kandji_oomnitza.workflows.state import SENT_PREFIX, sealed_under

if TYPE_CHECKING:  # the steps are imported when the task runs, not when the DAG file is parsed
    from kandji_oomnitza.presets.handover import ActionResult
    from kandji_oomnitza.workflows.handover import Request


class WorkflowActionOperator(KandjiDeviceActionOperator):
    """The preset's operator, with the workflow's last checks and its write-back: right before sending,
    the asset still matches and still holds the serial number that was resolved, and nothing was sent for
    this entry yet (a cleared run, a repeated or forged event); then ``sent:<entry>`` is written, before
    the call. After the action, the write-back fields are set on the asset (its failure is reported, and
    fails the run in the summary, but never resends the action)."""

    template_fields: tuple[str, ...] = ("inputs", "request")

    def __init__(self, *, workflow: Workflow, asset: Asset, request: Request, **kwargs: Any) -> None:
        kwargs.setdefault("inlets", [asset])
        kwargs.setdefault("kandji_conn_id", workflow.action.kandji_connection)
        kwargs.setdefault("oomnitza_conn_id", workflow.trigger.connection)
        super().__init__(**kwargs)
        self.workflow = workflow
        self.asset = asset
        self.request = request
        self.approved_by: str | None = None  # from Airflow's human-in-the-loop record, never from XCom

    def not_sent(self, context, outcome: dict[str, Any]):
        from airflow.sdk.exceptions import AirflowSkipException

        context["ti"].xcom_push(key=names.NOT_SENT, value=outcome)  # the summary's line for this record
        self.log.warning("%s", outcome["outcome"])
        return AirflowSkipException(outcome["outcome"])

    def run_preset(self, context) -> ActionResult:
        result = super().run_preset(context)
        result.approved_by = self.approved_by
        if self.workflow.write_back and result.acted:
            result.write_back, result.write_back_error = self._write_back(result)
        return result

    def _write_back(self, sent: ActionResult) -> tuple[dict[str, Any] | None, str | None]:
        from kandji_oomnitza.common.redaction import shorten
        from kandji_oomnitza.hooks.errors import ApiError
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.workflows.steps import write_back_changes

        changes = write_back_changes(self.workflow, self.request, sent, self.approved_by)
        try:
            OomnitzaHook(self.workflow.trigger.connection).update_record(
                "assets", self.request["record_id"], changes
            )
        except ApiError as exc:
            self.log.error(
                "The action was sent, but the write-back to asset %s failed: %s",
                self.request["record_id"],
                exc,
            )
            return None, shorten(exc, 300)
        self.log.info("Set on asset %s: %s", self.request["record_id"], changes)
        return changes, None

    def before_sending(self, context, device: dict[str, Any]) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from kandji_oomnitza.common.seal import seal, unseal
        from kandji_oomnitza.hooks.errors import ApiError
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.workflows.handover import SentMark

        request, store = self.request, context["asset_state_store"][self.asset]
        key = request["key"]
        where = sealed_under(self.asset.name, SENT_PREFIX + key)
        if (stored := store.get(SENT_PREFIX + key)) is not None:
            sent, forged = unseal(where, stored)
            if forged:  # any mark blocks a send: a forged one costs an action, never a second one
                raise self.not_sent(
                    context,
                    {
                        "outcome": f"entry {key} has a sent: mark this product did not write ({forged}); "
                        "someone allowed to edit assets may have written it (see SECURITY.md): nothing sent",
                        "failure": True,
                    },
                )
            earlier = SentMark.read(sent)
            by = f" (by run {earlier.run_id} at {earlier.at})" if earlier is not None else ""
            raise self.not_sent(
                context,
                {
                    "outcome": f"entry {key} was already sent{by}; it is not sent twice",
                    "failure": False,
                },
            )
        if device.get("device_id") != request["device"]["device_id"]:
            raise AirflowFailException(
                f"Kandji now resolves {request['serial_number']} to device {device.get('device_id')}, not the "
                f"{request['device']['device_id']} that was approved. Nothing was sent."
            )
        try:
            record = OomnitzaHook(self.workflow.trigger.connection).get_json(
                f"api/v3/assets/{quote(str(request['record_id']), safe='')}"
            )
        except ApiError as exc:
            raise AirflowFailException(
                f"The asset could not be read again before sending: {exc} Nothing was sent."
            ) from None
        serial = str((record or {}).get(self.workflow.action.serial_field) or "").upper()
        if (
            not isinstance(record, dict)
            or not self.workflow.trigger.holds(record)
            or serial != request["serial_number"]
        ):
            raise self.not_sent(
                context,
                {
                    "outcome": f"the asset no longer matches {self.workflow.trigger.describe()} with serial number "
                    f"{request['serial_number']}: nothing sent",
                    "failure": False,
                },
            )
        if self.approved_by:
            from kandji_oomnitza.common.approval import not_running_any_more

            if state := not_running_any_more(context):
                raise AirflowFailException(
                    f"Airflow's record marks this task {state}, not running, though its code was resumed by "
                    "the answer (Airflow 3.3's scheduler can fail a task answered seconds after it parked): "
                    "nothing was sent. Clear the task to ask again."
                )
            self.log.info("Approved by %s (Airflow's record of the answer)", self.approved_by)
        mark = SentMark(
            run_id=context["run_id"],
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            approved_by=self.approved_by,
        )
        store.set(SENT_PREFIX + key, seal(where, mark.to_xcom()))


class ApprovedWorkflowActionOperator(HITLOperator, WorkflowActionOperator):
    """``WorkflowActionOperator`` that first asks for approval: the task waits in Airflow's
    ``awaiting_input`` state (listed under Required Actions), then, resumed by Airflow with its own record
    of the answer (who gave it, and which), decides on that record only."""

    template_fields = ("subject", "body", "inputs", "request")

    def __init__(self, *, workflow: Workflow, **kwargs: Any) -> None:
        super().__init__(
            workflow=workflow,
            options=[APPROVE_OPTION, REJECT_OPTION],
            defaults=REJECT_OPTION,
            assigned_users=assigned_users(workflow.approval.approvers),
            response_timeout=workflow.approval.timeout,
            **kwargs,
        )

    def execute(self, context) -> Any:
        return HITLOperator.execute(self, context)  # waits for the answer

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        # ``event`` is not an XCom: Airflow's API server (or the scheduler's timeout sweep) built it from
        # this task's human-in-the-loop record, with the user it authenticated, and stored it on the task
        # instance; no REST endpoint writes it, and a task may resume only itself.
        self.approved_by, stopped = approval_decision(self.workflow, event)
        if stopped is not None:
            raise self.not_sent(context, stopped)
        return WorkflowActionOperator.execute(self, context)
