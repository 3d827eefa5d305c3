"""Workflow files: ``include/workflows/<name>.yaml`` → DAG ``kandji_workflow_<name>``.

A workflow is Oomnitza's Begin block run by Airflow: when an Oomnitza record starts matching the
trigger's conditions, the action (a preset from ``presets/registry.py``) runs on the device whose serial number
the record holds, after a person approves it where the file (or the preset's default) asks for that.

Everything here runs at parse time and does no I/O beyond reading the file.
"""

from __future__ import annotations

import enum
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from kandji_oomnitza import names
from kandji_oomnitza.common.notify import WorkflowNotify
from kandji_oomnitza.exceptions import WorkflowFileError
from kandji_oomnitza.presets.registry import CONN_ID_PATTERN, PRESETS, SERIAL_PATTERN, Preset
from kandji_oomnitza.settings_files import (
    FIELD_PATTERN,
    AirflowUserIds,
    Duration,
    Kind,
    Strict,
    is_field_name,
    main,
    validated_file,
)

NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,150}$")
# The whole template language: {{ field }}. Nothing else is evaluated, so a record's own text (which
# anyone who can edit the asset controls) can never run as a template.
PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]{0,99})\s*\}\}")
# Presets whose action cannot be undone, or locks a person out: approval is required unless the file
# says otherwise.
APPROVAL_BY_DEFAULT = frozenset({"erase_device", "lock_device", "device_shutdown"})
# Values a template may use besides the record's fields (filled in when the action ran).
WRITE_BACK_VALUES = ("action", "result", "sent_at", "serial_number_sent", "approved_by")
MIN_POLL_SECONDS = 5
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def check_template(text: str) -> str:
    """Only ``{{ field }}`` placeholders; any other use of braces is a mistake worth naming."""
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest or "{%" in rest or "%}" in rest:
        raise ValueError(
            f"{text!r}: a template may only hold placeholders like {{{{ assigned_to }}}} (a field's external "
            "id in lower case); expressions, filters and {% %} blocks are not supported"
        )
    return text


def render(text: str, values: dict[str, Any]) -> str:
    """Fill ``{{ field }}`` from ``values`` (a missing or empty field becomes an empty string)."""
    return PLACEHOLDER.sub(lambda m: "" if values.get(m[1]) is None else str(values[m[1]]), text)


class Match(enum.StrEnum):
    ALL = "all"
    ANY = "any"


class Condition(Strict):
    """One test on one field of the record: exactly one of ``equals``, ``in``, ``not_empty``."""

    field: str = Field(..., pattern=FIELD_PATTERN, description="the field's external id in Oomnitza")
    equals: str | int | float | bool | None = Field(None, description="the field holds exactly this value")
    in_: list[str | int | float] | None = Field(
        None, alias="in", min_length=1, description="the field holds one of these values"
    )
    not_empty: bool | None = Field(None, description="true: the field holds a value; false: it is empty")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [name for name in ("equals", "in_", "not_empty") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"condition on {self.field!r}: give exactly one of equals, in, not_empty "
                f"(got {', '.join(n.rstrip('_') for n in given) or 'none'})"
            )
        if self.not_empty is False:
            raise ValueError(f"condition on {self.field!r}: not_empty must be true (or leave it out)")
        if "equals" in self.model_fields_set and self.equals is None:
            raise ValueError(
                f"condition on {self.field!r}: equals needs a value; use not_empty for 'has any value'"
            )
        return self

    def holds(self, record: dict[str, Any]) -> bool:
        value = record.get(self.field)
        if self.not_empty:
            return value not in (None, "") and value != []
        if self.in_ is not None:
            return _text(value) in {_text(v) for v in self.in_}
        return _text(value) == _text(self.equals)

    def values(self) -> list[str | int | float | bool | None]:
        """The values the field may hold (``in``, else ``equals``)."""
        return list(self.in_) if self.in_ is not None else [self.equals]

    def server_filter(self) -> str | None:
        """This test in Oomnitza's filter language, or None when a value cannot be quoted safely (the
        records are then checked here only)."""
        if self.not_empty:
            return f"{self.field} IS NOT NULL"
        values = self.values()
        if any("'" in _text(v) or '"' in _text(v) for v in values):
            return None
        if self.in_ is not None:
            return f"{self.field} IN [{','.join(repr(_text(v)) for v in values)}]"
        return f"{self.field} eq '{_text(self.equals)}'"

    def describe(self) -> str:
        if self.not_empty:
            return f"{self.field} is not empty"
        if self.in_ is not None:
            return f"{self.field} in {', '.join(_text(v) for v in self.in_)}"
        return f"{self.field} == {_text(self.equals)!r}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


class Trigger(Strict):
    object: str = Field("assets", description="the Oomnitza object watched (assets)")
    conditions: list[Condition] = Field(
        ..., min_length=1, max_length=20, description="what a record must hold to enter (at most 20)"
    )
    match: Match = Field(Match.ALL, description="all conditions must hold, or any one of them")
    poll_interval: Annotated[
        timedelta,
        Duration(
            at_least=f"{MIN_POLL_SECONDS}s",
            at_most="1d",
            why="Oomnitza would be polled too often below it, and a change would wait more than a day above it",
        ),
    ] = Field(timedelta(minutes=5), description="how often Oomnitza is asked (e.g. 5m, 30s)")
    connection: str = Field(
        "oomnitza_default", pattern=CONN_ID_PATTERN, description="the Airflow connection to Oomnitza"
    )

    @field_validator("object")
    @classmethod
    def _assets_only(cls, value: str) -> str:
        if value != "assets":
            raise ValueError(
                f"{value!r}: workflows watch assets (the record holds the device's serial number); "
                "users are not supported yet"
            )
        return value

    def holds(self, record: dict[str, Any]) -> bool:
        results = (condition.holds(record) for condition in self.conditions)
        return all(results) if self.match is Match.ALL else any(results)

    def server_filters(self) -> list[str | None]:
        """The reads one poll makes: one filter for ``all`` (the conditions joined by AND, leaving out any
        that cannot be expressed), one per condition for ``any`` (Oomnitza's filter has no OR we rely
        on). None means "read every record"; the conditions are re-checked on what comes back."""
        if self.match is Match.ALL:
            clauses = [c.server_filter() for c in self.conditions]
            return [" AND ".join(c for c in clauses if c) or None]
        filters = [c.server_filter() for c in self.conditions]
        return [None] if None in filters else filters

    def describe(self) -> str:
        joiner = " and " if self.match is Match.ALL else " or "
        return joiner.join(c.describe() for c in self.conditions)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted({c.field for c in self.conditions}))

    def read_group(self) -> tuple[str, str, timedelta, str, tuple[str, ...]]:
        """Triggers with the same read group share one read per poll (``shared_filters``): the same
        connection, object, interval and kind of match, over the same fields."""
        return (self.connection, self.object, self.poll_interval, str(self.match), self.fields)


MAX_SHARED_VALUES = 200  # values in one shared IN [...] filter; beyond it the field is read as IS NOT NULL


def shared_filters(triggers: list[Trigger]) -> list[str | None]:
    """The reads one poll makes for every trigger of one read group (``Trigger.read_group``), whatever
    values each compares with: what any of them matches is in what these filters return, and each trigger
    checks its own conditions on the records. So 100 workflows that watch ``status`` for 100 values cost
    one read per poll, not 100. Per field: ``IN [...]`` every value any condition compares with; ``IS NOT
    NULL`` when one asks for any value (or too many values to list); no filter on the field when a value
    cannot be quoted safely or is empty (an empty value also matches a record without the field). With
    ``all``, one read of every field's filter joined by AND; with ``any``, one read per field."""
    by_field: dict[str, list[Condition]] = {}
    for trigger in triggers:
        for condition in trigger.conditions:
            by_field.setdefault(condition.field, []).append(condition)
    clauses: list[str | None] = []
    for name in sorted(by_field):
        conditions = by_field[name]
        if any(c.not_empty for c in conditions):
            clauses.append(f"{name} IS NOT NULL")
            continue
        values = sorted({_text(v) for c in conditions for v in c.values()})
        if any(v == "" or "'" in v or '"' in v for v in values):
            clauses.append(None)
        elif len(values) > MAX_SHARED_VALUES:
            clauses.append(f"{name} IS NOT NULL")
        else:
            clauses.append(f"{name} IN [{','.join(repr(v) for v in values)}]")
    if triggers[0].match is Match.ALL:
        return [" AND ".join(c for c in clauses if c) or None]
    return [None] if None in clauses else clauses


class ApprovalMode(enum.StrEnum):
    REQUIRED = "required"
    NONE = "none"


class Approval(Strict):
    mode: ApprovalMode | None = Field(
        None, description="required or none; by default required for destructive presets"
    )
    approvers: AirflowUserIds = Field(
        default_factory=list,
        max_length=50,
        description="Airflow user ids who may answer; empty: anyone whose role may act on this DAG",
    )
    timeout: Annotated[
        timedelta,
        Duration(
            at_least="1m",
            at_most="30d",
            why="a person needs at least a minute to answer, and an approval older than 30 days is stale",
        ),
    ] = Field(timedelta(days=1), description="how long to wait for an answer (e.g. 4h); then nothing is sent")
    unattended_erase: bool = Field(
        False, description="erase_device with mode none: say so here, or the file is refused"
    )


class Action(Strict):
    preset: str = Field(..., description="a preset key, e.g. lock_device")
    inputs: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="the preset's inputs; text may use {record fields} as a template"
    )
    serial_field: str = Field(
        "serial_number",
        pattern=FIELD_PATTERN,
        description="the Oomnitza field holding the device's serial number",
    )
    kandji_connection: str = Field(
        "kandji_default", pattern=CONN_ID_PATTERN, description="the Airflow connection to Kandji"
    )

    @field_validator("preset")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PRESETS_BY_KEY:
            raise ValueError(f"{value!r} is not a preset; use one of {', '.join(sorted(PRESETS_BY_KEY))}")
        return value

    @model_validator(mode="after")
    def _inputs(self) -> Action:
        preset = PRESETS_BY_KEY[self.preset]
        for name, value in self.inputs.items():
            if name == "pin":
                raise ValueError(
                    "inputs.pin: a PIN must not be written in a workflow file (anyone who reads the repository "
                    "would hold it); erase Macs from the Erase Device preset, where the PIN is typed per run"
                )
            if name == "confirm_serial_number":
                raise ValueError(
                    "inputs.confirm_serial_number: leave it out; in a workflow the record's serial number is "
                    "used and the approval replaces the typed confirmation"
                )
            if name not in preset.params:
                known = ", ".join(p for p in preset.params if p not in ("pin", "confirm_serial_number"))
                raise ValueError(
                    f"inputs.{name}: {preset.key} takes no such input (it takes: {known or 'none'})"
                )
            if isinstance(value, str):
                check_template(value)
            _check_input(preset, name, value)
        for name, spec in preset.params.items():
            if preset.required(name) and name not in self.inputs:
                raise ValueError(f"inputs.{name} is required by {preset.key}: {spec['description']}")
        return self

    @property
    def definition(self) -> Preset:
        return PRESETS_BY_KEY[self.preset]

    def used_fields(self) -> list[str]:
        names = [self.serial_field]
        for value in self.inputs.values():
            if isinstance(value, str):
                names.extend(placeholders(value))
        return list(dict.fromkeys(names))


def valid_input(preset: Preset, name: str, value: Any) -> Any:
    """``value`` checked by input ``name``'s trigger-form Param, as a preset DAG's trigger would be;
    ValueError naming the input and the rule broken."""
    try:
        return preset.param(name, value).resolve(value)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"inputs.{name} = {value!r} is not valid for {preset.key}: {first}") from None


def _check_input(preset: Preset, name: str, value: Any) -> None:
    """A fixed input is checked now; a templated one must at least be text (its filled-in value is
    checked per record, before anything is sent)."""
    spec_type = preset.params[name]["type"]
    types = spec_type if isinstance(spec_type, list) else [spec_type]
    if isinstance(value, str) and placeholders(value):
        if "string" not in types:
            raise ValueError(
                f"inputs.{name}: a template gives text, but {preset.key} wants {' or '.join(types)}"
            )
        return
    valid_input(preset, name, value)


class Workflow(Strict):
    name: str = Field("", max_length=200, description="shown in Airflow and on the Integrations page")
    description: str = Field("", max_length=2000, description="shown in the DAG's docs and on the card")
    enabled: bool = Field(..., description="false: the DAG is shown, Oomnitza is not polled")
    trigger: Trigger = Field(..., description="the Oomnitza change that starts a run")
    action: Action = Field(..., description="the preset each record that entered runs")
    approval: Approval = Field(default_factory=Approval, description="who approves before it is sent")
    write_back: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        max_length=20,
        description="Oomnitza field -> value set on the record after the action",
    )
    tags: list[str] = Field(default_factory=list, max_length=20, description="more tags on the DAG")
    notify: WorkflowNotify | None = Field(
        None, description="who hears that a person must approve, or that a run failed"
    )

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_shorthand(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("write_back")
    @classmethod
    def _write_back(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, text in value.items():
            if not is_field_name(name):
                raise ValueError(
                    f"{name!r}: use the field's external id in Oomnitza (lower case, like kandji_last_action)"
                )
            if isinstance(text, str):
                check_template(text)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Workflow:
        if self.write_back and self.action.serial_field in self.write_back:
            raise ValueError(
                f"write_back must not change {self.action.serial_field}, the field that names the device"
            )
        watched = {c.field for c in self.trigger.conditions}
        if overlap := watched & set(self.write_back):
            raise ValueError(
                f"write_back sets {', '.join(sorted(overlap))}, which the trigger watches: the workflow would "
                "start itself again (or never end); write to another field"
            )
        if self.notify and self.notify.on_approval_waiting and not self.approval_required:
            raise ValueError(
                "notify.on_approval_waiting is set but approval.mode is none: nobody is asked; set mode: "
                "required or remove it"
            )
        if self.approval.approvers and not self.approval_required:
            raise ValueError(
                "approval.approvers is set but approval.mode is none; set mode: required or remove them"
            )
        erase = self.action.preset == "erase_device"
        if erase and not self.approval_required and not self.approval.unattended_erase:
            raise ValueError(
                "approval: none would erase devices with nobody confirming, and an erase cannot be undone; "
                "keep approval required, or write approval: {mode: none, unattended_erase: true} if you "
                "really mean every matching device to be erased at once"
            )
        if self.approval.unattended_erase and (not erase or self.approval_required):
            raise ValueError("approval.unattended_erase is only for erase_device with approval mode none")
        return self

    @property
    def unattended_erase(self) -> bool:
        """Devices are erased with nobody confirming (stated explicitly in the file)."""
        return self.action.preset == "erase_device" and not self.approval_required

    @property
    def approval_required(self) -> bool:
        if self.approval.mode is None:
            return self.action.preset in APPROVAL_BY_DEFAULT
        return self.approval.mode is ApprovalMode.REQUIRED

    @property
    def record_fields(self) -> list[str]:
        """The record's fields a run carries: the ones the trigger tests and the action and write-back use."""
        names = [c.field for c in self.trigger.conditions] + self.action.used_fields()
        for value in self.write_back.values():
            if isinstance(value, str):
                names.extend(n for n in placeholders(value) if n not in WRITE_BACK_VALUES)
        return list(dict.fromkeys(["device_name", *names]))


def load_workflow(path: Path) -> Workflow:
    if not NAME_PATTERN.match(path.stem):
        raise WorkflowFileError(
            f"Invalid workflow file {path}: the file name becomes the DAG id kandji_workflow_<name>; "
            "use lower-case letters, digits and underscores"
        )
    return validated_file(path, Workflow, WORKFLOWS.what, WorkflowFileError)


WORKFLOWS: Kind = Kind(
    noun="workflow",
    what="workflow file",
    folder_env="KANDJI_OOMNITZA_WORKFLOWS_DIR",
    config_option="workflows_folder",
    default_folder="workflows",
    dag_id=names.workflow_dag_id,
    load=load_workflow,
    error=WorkflowFileError,
    marker="trigger",
)


def serial_is_valid(serial: Any) -> bool:
    return isinstance(serial, str) and re.fullmatch(SERIAL_PATTERN, serial) is not None


if __name__ == "__main__":  # python -m kandji_oomnitza.workflows.config FILE...: checks workflow files
    sys.exit(main(sys.argv[1:], (WORKFLOWS,)))
