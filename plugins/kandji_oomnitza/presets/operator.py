"""Kandji device actions as an operator: resolve the serial, check the platform, act once, report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from kandji_oomnitza import names
from kandji_oomnitza.exceptions import PresetInputError
from kandji_oomnitza.hooks.links import KandjiDeviceLink, OomnitzaAssetLink
from kandji_oomnitza.presets.handover import ALREADY_DONE, SENT, ActionResult
from kandji_oomnitza.presets.registry import CONNECTION_PARAMS, Preset

COMMAND_STATUS = {1: "pending", 2: "running", 3: "completed", 4: "failed", 5: "not now"}
FINAL_STATUSES = ("completed", "failed", "not now")
SERIALS = ("serial_number", "confirm_serial_number")


def validate_inputs(preset: Preset, params: dict[str, Any]) -> dict[str, Any]:
    """The checks Airflow's param schemas cannot express (Airflow has already checked each input's type,
    pattern and length when the run was triggered): the erase confirmation, no stray whitespace in the
    other inputs, and a serial number pasted with spaces around it trimmed (the form lets it through)."""
    params = {k: v.strip() if k in SERIALS and isinstance(v, str) else v for k, v in params.items()}
    serial = params.get("serial_number")
    for name, value in params.items():
        if isinstance(value, str) and value != value.strip() and name in preset.params:
            raise PresetInputError(f"{name} has spaces at its start or end; remove them and trigger again.")
    if "confirm_serial_number" in preset.params and params.get("confirm_serial_number") != serial:
        raise PresetInputError(
            "Nothing was erased: type the serial number again in Confirm serial number "
            "(confirm_serial_number must repeat serial_number exactly)."
        )
    return {"serial_number": str(serial).upper(), **{name: params.get(name) for name in preset.params}}


class KandjiDeviceActionOperator(BaseOperator):
    """Run one preset against the device with the given serial number.

    Sent at most once: Kandji actions are not idempotent, so the task does not retry (``retries=0``)
    and the hook never resends an action that may have reached Kandji. Lookups retry as usual.
    """

    operator_extra_links = (KandjiDeviceLink(), OomnitzaAssetLink())
    ui_color = "#fdebd0"
    # ``inputs`` comes from a workflow's prepare step (an XCom, resolved, never rendered as Jinja).
    template_fields: tuple[str, ...] = ("inputs",)

    def __init__(
        self,
        *,
        preset: Preset,
        kandji_conn_id: str = "kandji_default",
        oomnitza_conn_id: str = "oomnitza_default",
        confirm_timeout_seconds: float = 30.0,
        inputs: dict[str, Any] | None = None,
        asset_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        if preset.action is None and asset_record is None:
            raise ValueError(f"{preset.key} needs asset_record: how a device becomes an Oomnitza record")
        self.preset = preset
        # Get Asset Details: the device (with its details) as the Oomnitza record to update.
        self.asset_record = asset_record
        # The serial number and preset inputs; None: the DAG run's params (the preset DAGs' trigger form).
        self.inputs = inputs
        self.kandji_conn_id = kandji_conn_id
        self.oomnitza_conn_id = oomnitza_conn_id
        self.confirm_timeout_seconds = confirm_timeout_seconds
        # What the run acted on, for the task's links (computed when the task finishes, in this process).
        self.serial_number: str | None = None
        self.device_id: str | None = None

    def execute(self, context) -> dict[str, Any]:
        return self.run_preset(context).to_xcom()

    def run_preset(self, context) -> ActionResult:
        """Run the preset. A failure a user can cause ends as one plain sentence in the log (the last
        line before Airflow's own record of the failure, whose traceback stops at this method)."""
        try:
            return self._run(context)
        except AirflowFailException as exc:
            self.log.error("%s", exc)
            raise exc.with_traceback(None) from None

    def _run(self, context) -> ActionResult:
        from kandji_oomnitza.hooks.errors import ApiError
        from kandji_oomnitza.hooks.kandji import KandjiHook

        ti = context["ti"]
        if self.inputs is None:  # a preset DAG: its trigger form may name other connections
            params = context["params"]
            self.kandji_conn_id = params.get(CONNECTION_PARAMS["kandji"]) or self.kandji_conn_id
            self.oomnitza_conn_id = params.get(CONNECTION_PARAMS["oomnitza"]) or self.oomnitza_conn_id
        inputs = validate_inputs(self.preset, self.inputs if self.inputs is not None else context["params"])
        serial = inputs["serial_number"]
        self.serial_number = serial  # read by the task's links when it finishes
        ti.xcom_push(key=names.SERIAL_NUMBER, value=serial)
        kandji = KandjiHook(self.kandji_conn_id)
        try:
            device = kandji.find_device_by_serial(serial)
        except ApiError as exc:
            raise AirflowFailException(str(exc)) from None
        self.device_id = device["device_id"]
        ti.xcom_push(key=names.DEVICE_ID, value=device["device_id"])
        platform = device.get("platform", "")
        if problem := self.preset.platform_problem(device):
            raise AirflowFailException(problem)
        if self.preset.action is None:
            return self._asset_details(kandji, device)
        body = self.preset.body(inputs)
        self.before_sending(context, device)
        self.log.info(
            "Sending %s to %s (%s, %s)", self.preset.action, serial, device.get("device_name"), platform
        )
        summary = ActionResult(
            preset=self.preset.title,
            serial_number=serial,
            device_id=device["device_id"],
            device_name=device.get("device_name"),
            platform=platform,
        )
        try:
            answer = kandji.device_action(device["device_id"], self.preset.action, body)
        except ApiError as exc:
            if exc.status == 400 and exc.api_message in self.preset.already_done:
                self.log.warning(
                    "Kandji answered %r: the device is already in the state this action sets.",
                    exc.api_message,
                )
                summary.result, summary.kandji_message = ALREADY_DONE, exc.api_message
                return summary
            raise AirflowFailException(f"{self.preset.title} on {serial}: {exc}") from None
        if "PIN" in answer:
            from airflow.sdk.log import mask_secret

            mask_secret(str(answer.pop("PIN")))  # masked everywhere from here on; never logged or returned
            self.log.info(
                "Kandji created an unlock PIN for this Mac. It is not shown here: read it in Kandji, on the "
                "device's page under Device Secrets (Unlock PIN)."
            )
            summary.unlock_pin = "kept in Kandji's device secrets"
        # From here on Kandji has accepted the action: only Kandji reporting the command failed may fail
        # the run. Whoever sees a failed run may send the action again (a second lock, a second erase).
        summary.result = SENT
        summary.delivery = self._confirm(kandji, device["device_id"])
        return summary

    def before_sending(self, context, device: dict[str, Any]) -> None:
        """The last moment before the action goes to Kandji (the workflows' operator checks here)."""

    def _confirm(self, kandji, device_id: str) -> str:
        """Poll the device's command list for the queued command, for a bounded time. A command list
        that cannot be read (no permission, an outage) leaves delivery unknown, with a warning."""
        from kandji_oomnitza.common.polling import poll
        from kandji_oomnitza.common.redaction import shorten
        from kandji_oomnitza.hooks.errors import ApiError

        if not self.preset.command_type or self.confirm_timeout_seconds <= 0:
            return "not checked"

        def status() -> str:
            commands = [
                c
                for c in kandji.get_device_commands(device_id)
                if c.get("command_type") == self.preset.command_type
            ]
            if not commands:
                return "not seen"
            return COMMAND_STATUS.get(commands[0].get("status"), str(commands[0].get("status")))

        try:
            delivery = poll(
                status,
                done=lambda s: s in FINAL_STATUSES,
                timeout_seconds=self.confirm_timeout_seconds,
                # Kandji usually reports a command within a second or two: ask soon, then every 2 s.
                first_wait=0.5,
                max_wait=2.0,
                growth=1.5,
            )
        except ApiError as exc:
            reason = shorten(exc, 300)
            self.log.warning(
                "Kandji accepted the %s command, but its delivery could not be checked: %s. The action was "
                "sent; do not send it again. Check the device's command history in Kandji.",
                self.preset.command_type,
                reason,
            )
            return f"unknown ({reason})"
        self.log.info("Kandji reports the %s command as %s", self.preset.command_type, delivery)
        if delivery == "failed":
            raise AirflowFailException(
                f"Kandji reports the {self.preset.command_type} command failed on the device."
            )
        return delivery

    def _asset_details(self, kandji, device: dict[str, Any]) -> ActionResult:
        """Get Asset Details: the device and its /details, mapped as the assets integration maps them,
        sent to Oomnitza as an update of the asset with this serial number."""
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.hooks.oomnitza_protocol import Preference

        device["details"] = kandji.get_device_details(device["device_id"])
        if self.asset_record is None:  # __init__ refuses a preset without an action and without it
            raise ValueError(f"{self.preset.key} needs asset_record")
        try:
            record = self.asset_record(device)
        except ValueError as exc:
            raise AirflowFailException(f"The device cannot be mapped: {exc}") from None
        oomnitza = OomnitzaHook(self.oomnitza_conn_id)
        run = oomnitza.start_run(
            data_type="assets",
            sync_field=["serial_number"],
            preference=Preference.UPDATE_ONLY,
            connector_name="kandji-oomnitza-airflow-presets",
        )
        run.add(record)
        finished = run.finish(timeout_seconds=120)
        if run.failure is not None:
            raise AirflowFailException(
                f"Kandji's details of {device['serial_number']} could not be sent to Oomnitza: {run.failure}"
            )
        outcome = finished.outcome
        if outcome is None:  # the run log is auxiliary: the update went out, its outcome is unknown
            self.log.warning(
                "The update of %s was sent to Oomnitza, but its outcome could not be read: %s",
                device["serial_number"],
                finished.outcome_error,
            )
        elif outcome.counts.get("skipped") or outcome.counts.get("failed"):
            messages = outcome.messages.get("skipped", []) + outcome.messages.get("failed", [])
            raise AirflowFailException(
                f"Oomnitza did not update the asset with serial number {device['serial_number']}: {'; '.join(messages)}. "
                "Get Asset Details only updates existing assets; run the devices integration to create it."
            )
        details = device["details"]
        user = device.get("user")
        return ActionResult(
            preset=self.preset.title,
            serial_number=device["serial_number"],
            device_id=device["device_id"],
            device_name=device.get("device_name"),
            model=device.get("model"),
            platform=device.get("platform"),
            os_version=device.get("os_version"),
            user=user.get("email") if isinstance(user, dict) else None,
            last_check_in=record.get("kandji_last_check_in"),
            blueprint=device.get("blueprint_name"),
            mdm_enabled=details.get("mdm", {}).get("mdm_enabled"),
            oomnitza=outcome.status if outcome else f"sent, outcome unknown ({finished.outcome_error})",
            oomnitza_counts={k: v for k, v in outcome.counts.items() if v} if outcome else {},
        )
