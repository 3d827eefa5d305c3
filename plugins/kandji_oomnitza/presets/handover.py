"""What a preset's ``run_action`` hands on (its return value, XCom ``return_value``): read by a workflow's
summary, by whoever looks at the run, and written by the workflows' operator with what it adds. Never
the unlock PIN: Kandji's answer carries it, and the operator masks it and keeps only where to read it."""

from __future__ import annotations

from typing import Any, Final, Literal

from kandji_oomnitza.common.handover import Handover

SENT: Final = "sent"
ALREADY_DONE: Final = "already done"  # Kandji said the device is already in the state the action sets


class ActionResult(Handover):
    # Defaults everywhere: a workflow's summary reads whatever XCom a run_action left (it may have been
    # written by hand), and says what it claims; it decides on the sealed sent: mark, never on this.
    preset: str = ""
    serial_number: str = ""
    device_id: str | None = None
    device_name: str | None = None
    platform: str | None = None
    # an action preset
    result: Literal["sent", "already done"] | None = (
        None  # already done: Kandji said the device is in that state
    )
    kandji_message: str | None = None  # Kandji's words for "already done"
    delivery: str | None = (
        None  # the command's status as Kandji reported it, "not checked" or "unknown (why)"
    )
    unlock_pin: str | None = None  # where the PIN is (Kandji's device secrets), never the PIN
    # Get Asset Details
    model: str | None = None
    os_version: str | None = None
    user: str | None = None
    last_check_in: Any = None
    blueprint: str | None = None
    mdm_enabled: Any = None
    oomnitza: str | None = None  # Oomnitza's outcome of the update
    oomnitza_counts: dict[str, int] = {}
    # a workflow's action (workflows/operator.py)
    approved_by: str | None = None  # Airflow's record of who approved
    write_back: dict[str, Any] | None = None  # the fields set on the asset after the action
    write_back_error: str | None = None

    @property
    def acted(self) -> bool:
        """Kandji took the action, or said the device was already in its state."""
        return self.result in (SENT, ALREADY_DONE)
