"""The device-action presets: one registry, one DAG each (``dags/kandji_presets.py``).

A preset says which Kandji action it runs, on which platforms, which inputs its trigger form asks for
(each a typed Param: the form is the user interface), and how the inputs become Kandji's PascalCase body.
Adding a preset is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kandji_oomnitza import names

APPLE = ("Mac", "iPhone", "iPad", "AppleTV")
SERIAL_PATTERN = r"^[A-Za-z0-9]{4,32}$"
# The trigger form's: a serial pasted with a space around it is accepted and trimmed by the task (the
# form's own refusal would be a JSON-schema dump); anything else is refused by the form.
SERIAL_FORM_PATTERN = r"^\s*[A-Za-z0-9]{4,32}\s*$"


def _param(default: Any, type_: Any, title: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"default": default, "type": type_, "title": title, "description": description, **schema}


SERIAL_PARAM: dict[str, Any] = {
    "type": "string",
    "pattern": SERIAL_FORM_PATTERN,
    "minLength": 4,
    "maxLength": 40,
    "title": "Serial number",
    "description": "The device's serial number as Kandji shows it: letters and digits only (e.g. C02ABC123XYZ).",
}


CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,200}$"
# The trigger form's connection params (conf keys), by service: a run may use another tenant's connection.
CONNECTION_PARAMS = {"kandji": "kandji_conn_id", "oomnitza": "oomnitza_conn_id"}


def connection_param(service: str) -> dict[str, Any]:
    return _param(
        f"{service}_default",
        "string",
        f"{service.title()} connection",
        f"The Airflow connection to {service.title()} (default {service}_default).",
        pattern=CONN_ID_PATTERN,
    )


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    action: str | None  # Kandji's action name; None for Get Asset Details (no action)
    platforms: tuple[str, ...]
    summary: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    body: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda params: None
    # Kandji answers that mean the device is already where the action would put it: a warning, not a failure.
    already_done: tuple[str, ...] = ()
    # Kandji's command type in /devices/{id}/commands, for delivery confirmation (INFERRED names).
    command_type: str | None = None

    @property
    def dag_id(self) -> str:
        return names.preset_dag_id(self.key)

    @property
    def services(self) -> tuple[str, ...]:
        """The APIs a run calls: Kandji always; Oomnitza too for Get Asset Details (no action)."""
        return ("kandji",) if self.action else ("kandji", "oomnitza")

    def required(self, name: str) -> bool:
        """Whether input ``name`` must be given: it has no default and may not be null."""
        spec = self.params[name]
        return spec.get("default") is None and "null" not in spec["type"]

    def param(self, name: str, default: Any) -> Any:
        """Input ``name`` as the typed Airflow Param its trigger form shows (and checks values with)."""
        from airflow.sdk import Param

        return Param(default, **{k: v for k, v in self.params[name].items() if k != "default"})

    def platform_problem(self, device: dict[str, Any]) -> str | None:
        """Why this preset must not run on ``device``; None when its platform is one the preset is for."""
        platform = device.get("platform", "")
        if platform in self.platforms:
            return None
        return (
            f"{self.title} is for {', '.join(self.platforms)}; device {device.get('serial_number')} "
            f"({device.get('device_name')}) is a {platform or 'device of unknown platform'}. Nothing was sent."
        )


def _only_given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}


PRESETS: tuple[Preset, ...] = (
    Preset(
        key="clear_passcode",
        title="Kandji Clear Passcode",
        action="clearpasscode",
        platforms=("iPhone", "iPad"),
        summary="Clears the passcode of an iPhone or iPad.",
        command_type="ClearPasscode",
    ),
    Preset(
        key="device_restart",
        title="Kandji Device Restart",
        action="restart",
        platforms=("iPhone", "iPad", "AppleTV", "Mac"),
        summary="Restarts the device.",
        params={
            "rebuild_kernel_cache": _param(
                False,
                "boolean",
                "Rebuild kernel cache",
                "Macs on macOS 11 or later: rebuild the kernel cache while restarting.",
            ),
            "notify_user": _param(
                False,
                "boolean",
                "Notify user",
                "Macs on macOS 11.3 or later: tell the signed-in user a restart is coming.",
            ),
        },
        body=lambda p: {
            "RebuildKernelCache": bool(p["rebuild_kernel_cache"]),
            "NotifyUser": bool(p["notify_user"]),
        },
        command_type="RestartDevice",
    ),
    Preset(
        key="device_set_name",
        title="Kandji Device Set Name",
        action="setname",
        platforms=APPLE,
        summary="Sets the device's name.",
        params={
            "device_name": _param(
                None,
                "string",
                "New device name",
                "The name to give the device (1-63 characters; no control characters).",
                minLength=1,
                maxLength=63,
                pattern=r"^[^\x00-\x1f\x7f/\\]+$",
            ),
        },
        body=lambda p: {"DeviceName": p["device_name"].strip()},
        command_type="Settings",
    ),
    Preset(
        key="device_shutdown",
        title="Kandji Device Shutdown",
        action="shutdown",
        platforms=("iPhone", "iPad", "Mac"),
        summary="Shuts the device down.",
        command_type="ShutDownDevice",
    ),
    Preset(
        key="erase_device",
        title="Kandji Erase Device",
        action="erase",
        platforms=APPLE,
        summary="Erases the device. Irreversible: type the serial number twice.",
        params={
            # Nullable, so a missing confirmation gets the task's plain sentence, not a schema dump.
            "confirm_serial_number": _param(
                None,
                ["null", "string"],
                "Confirm serial number",
                "Type the serial number again: the device is erased only when both match.",
                pattern=SERIAL_FORM_PATTERN,
                maxLength=40,
            ),
            "pin": _param(
                None,
                ["null", "string"],
                "PIN (Macs)",
                "Macs only: a 6-digit PIN needed to unlock the Mac after erasing.",
                pattern=r"^[0-9]{6}$",
            ),
            "preserve_data_plan": _param(
                True,
                "boolean",
                "Preserve data plan",
                "iPhones and iPads on iOS 11+: keep the cellular data plan.",
            ),
            "disallow_proximity_setup": _param(
                False, "boolean", "Disallow proximity setup", "Prevent Proximity Setup after the erase."
            ),
        },
        body=lambda p: {
            **_only_given(PIN=p["pin"]),
            "PreserveDataPlan": bool(p["preserve_data_plan"]),
            "DisallowProximitySetup": bool(p["disallow_proximity_setup"]),
            "ReturnToService": {"Enabled": False},
        },
        command_type="EraseDevice",
    ),
    Preset(
        key="get_asset_details",
        title="Kandji Get Asset Details",
        action=None,
        platforms=(*APPLE, "Windows", "Android"),
        summary="Reads the device and its details from Kandji and updates its asset in Oomnitza (update only).",
    ),
    Preset(
        key="lock_device",
        title="Kandji Lock Device",
        action="lock",
        platforms=(*APPLE, "Android"),
        summary="Locks the device. Macs get an unlock PIN, kept in Kandji's device secrets (never shown here).",
        params={
            "message": _param(
                None,
                ["null", "string"],
                "Lock screen message",
                "Shown on the locked device.",
                maxLength=200,
                pattern=r"^[^\x00-\x1f\x7f]*$",
            ),
            "phone_number": _param(
                None,
                ["null", "string"],
                "Phone number",
                "Shown on the lock screen (Apple silicon Macs and iOS).",
                maxLength=30,
                pattern=r"^[0-9+()\- .]*$",
            ),
        },
        body=lambda p: _only_given(Message=p["message"], PhoneNumber=p["phone_number"]) or None,
        already_done=("This device is already locked.",),
        command_type="DeviceLock",
    ),
    Preset(
        key="unlock_account",
        title="Kandji Unlock Account",
        action="unlockaccount",
        platforms=("Mac",),
        summary="Unlocks a local account that macOS locked after too many failed passwords.",
        params={
            "username": _param(
                None,
                "string",
                "Local account",
                "The short name of the locked local account on the Mac.",
                pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
            ),
        },
        body=lambda p: {"UserName": p["username"]},
        command_type="UnlockUserAccount",
    ),
)
