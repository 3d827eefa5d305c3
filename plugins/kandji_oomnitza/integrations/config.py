"""Integration files: one YAML file per integration ("tile"), validated completely at parse time.

What Oomnitza's wizard asks lives in the file: a name, the connections, software on/off (assets) or
the user selection (users), the preference, the integration user, the sync key, the mappings and the
schedule. Every mistake is reported with the file, the field and the fix, before anything runs.

Check files from a shell:  python -m kandji_oomnitza.integrations.config include/integrations/*.yaml
"""

from __future__ import annotations

import difflib
import enum
import json
import math
import re
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from kandji_oomnitza import names
from kandji_oomnitza.common.notify import IntegrationNotify
from kandji_oomnitza.exceptions import IntegrationFileError, SettingsFileDeprecation
from kandji_oomnitza.hooks.oomnitza_protocol import Preference
from kandji_oomnitza.integrations.fields import CONVERTERS, STANDARD_FIELDS
from kandji_oomnitza.settings_files import (
    AirflowUserIds,
    Duration,
    Kind,
    Percent,
    Strict,
    days_words,
    is_field_name,
    main,
    validated_file,
)

DAG_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,200}$")
CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually", "@midnight"}


class SoftwareRoute(enum.StrEnum):
    AUTO = "auto"  # Prism pages, or the Prism export for large fleets; /apps only where Prism cannot help
    PER_DEVICE = "per_device"  # one /devices/{id}/apps call per device (Kandji's own scripts do this)
    PRISM = "prism"  # /prism/apps, 300 rows a call
    PRISM_EXPORT = "prism_export"  # the asynchronous Prism CSV export


class UserSelection(enum.StrEnum):
    USER = "user"
    USER_PLUS_SAAS_USER = "user_plus_saas_user"


class Converter(Strict):
    """A converter from the registry in ``fields.py``, by name, with its options."""

    name: str = Field(..., description="the converter (integrations/fields.py lists them), e.g. join, lower")
    separator: str = Field(", ", description="join: what goes between the values")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in CONVERTERS:
            close = difflib.get_close_matches(name, list(CONVERTERS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown converter {name!r}; {hint}use one of {sorted(CONVERTERS)}")
        return name

    @property
    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})


@dataclass(frozen=True)
class ResolvedMapping:
    """One mapping as the engine reads it, with a standard field expanded to its Kandji path and converter."""

    label: str  # what a person reads: the standard field's name, or "path x", "template ...", "constant ..."
    paths: tuple[str, ...]
    special: str | None  # "sync_time": the time the run read Kandji
    converter: Converter | None
    constant: str | int | float | bool | None
    template: str | None
    clear_when_empty: bool


class Mapping(Strict):
    """One Oomnitza field's source: exactly one of ``field``, ``path``, ``constant``, ``template``."""

    field: str | None = Field(None, description="a standard Kandji field by its name, e.g. 'Serial Number'")
    path: str | list[str] | None = Field(
        None, description="dot path(s) into the Kandji record; 'details.' reads the device's /details"
    )
    constant: str | int | float | bool | None = Field(None, description="the same value for every record")
    template: str | None = Field(
        None, description="text with {path} placeholders, e.g. '{device_name} ({platform})'"
    )
    converter: Converter | None = Field(
        None, description="turns the Kandji value into Oomnitza's (a standard field has its own)"
    )
    clear_when_empty: bool = Field(
        False, description="send an empty value (clearing the Oomnitza field) instead of skipping it"
    )

    @field_validator("converter", mode="before")
    @classmethod
    def _converter_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> Mapping:
        given = [k for k in ("field", "path", "constant", "template") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one source (field, path, constant or template); got {given or 'none'}"
            )
        takes = CONVERTERS[self.converter.name].paths if self.converter else "one"
        if isinstance(self.path, list) and takes == "one":
            several = sorted(name for name, spec in CONVERTERS.items() if spec.paths != "one")
            raise ValueError(f"a list of paths needs one of the converters {' or '.join(several)}")
        if self.converter and takes == "many" and not isinstance(self.path, list):
            raise ValueError(f"converter {self.converter.name} needs path to be a list of paths")
        if self.converter and takes == "any" and self.path is None:
            raise ValueError(
                f"converter {self.converter.name} needs a path (a list value, or a list of paths)"
            )
        for path in self.paths:
            if not re.fullmatch(r"[A-Za-z0-9_@-]+(\.[A-Za-z0-9_@-]+)*", path):
                raise ValueError(
                    f"path {path!r} is not a dot path like 'user.email' or 'details.mdm.supervised'"
                )
        return self

    @property
    def paths(self) -> list[str]:
        if self.path is not None:
            return [self.path] if isinstance(self.path, str) else list(self.path)
        if self.template is not None:
            return re.findall(r"\{([^{}]+)\}", self.template)
        return []


class Schedule(Strict):
    cron: str | None = Field(
        "@daily", description="a cron expression or preset (@daily); null for manual runs only"
    )
    timezone: str = Field("UTC", description="the cron's time zone (an IANA name, e.g. Europe/Berlin)")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value.startswith("@"):
            if value not in CRON_PRESETS:
                raise ValueError(
                    f"unknown preset {value!r}; use one of {sorted(CRON_PRESETS)} or a cron expression"
                )
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a valid cron expression (e.g. '0 2 * * *' for 02:00 every day)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        import pendulum

        try:
            pendulum.timezone(value)
        except Exception:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return value


class Software(Strict):
    enabled: bool = Field(True, description="load each device's installed apps as its software")
    route: SoftwareRoute = Field(
        SoftwareRoute.AUTO,
        description="how the apps are read: auto picks the cheapest that covers the fleet (Prism, its CSV "
        "export, or one /apps call per device)",
    )
    export_threshold_rows: Annotated[int, Field(ge=0)] = Field(
        50_000, description="with route auto, Prism app rows at or above which the CSV export is used"
    )
    concurrency: Annotated[int, Field(ge=1, le=32)] = Field(
        16, description="per-device /apps calls in flight at once (the rate limiter still paces them)"
    )


class Users(Strict):
    selection: UserSelection = Field(
        UserSelection.USER_PLUS_SAAS_USER,
        description="Oomnitza users only, or users marked as SaaS users of Kandji too",
    )
    skip_archived: bool = Field(False, description="leave Kandji's archived users out")
    integration_ids: list[str] = Field(
        default_factory=list, description="only users of these directory integrations"
    )


class Load(Strict):
    batch_size: Annotated[int, Field(ge=1, le=100)] = Field(
        100, description="records per Oomnitza bulk request (Oomnitza takes at most 100)"
    )
    concurrency: Annotated[int, Field(ge=1, le=8)] = Field(
        4, description="Oomnitza batches in flight at once (1 sends them one after another)"
    )
    max_failed_records: Annotated[int, Field(ge=0)] = Field(
        0, description="the run fails when more records than this were not loaded (default: any failure)"
    )
    check_fields: bool = Field(
        True, description="check the mapped fields against Oomnitza's field metadata first"
    )
    outcome_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        900.0, description="how long to wait for Oomnitza's outcome of a load before calling it unconfirmed"
    )


FieldValue = str | int | float | bool | None


class Delta(Strict):
    """Send Oomnitza only the records that changed since it last confirmed them (see delta.py)."""

    enabled: bool = Field(
        False, description="send only the records that changed since Oomnitza confirmed them"
    )
    full_sync_every: Annotated[
        timedelta,
        Duration(
            at_least="1h",
            at_most="365d",
            why="a full sync at most every hour (each one sends every record), and at least once a year",
        ),
    ] = Field(
        timedelta(days=7),
        description="a full send at least this often (e.g. 7d, 12h), to correct edits made in Oomnitza",
    )


MAX_FLAGGED_FLOOR = 10  # a percentage limit never stops fewer records than this (a small fleet's churn)


def assignments_words(values: dict[str, Any]) -> str:
    """Field values as a person reads them: status = "Not in Kandji", kandji_missing = true."""
    return ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items())


class WhenMissing(Strict):
    """Oomnitza records whose Kandji device or user has not been seen for ``after_days``: set fields on
    them once (never delete), and optionally set others when the record shows up in Kandji again.

    Two safeguards (always on; over either, a person confirms under Required Actions, see safeguard.py):
    at most ``max_flagged`` records flagged in one run, and nothing flagged when the Kandji listing shrank
    by more than ``max_listing_shrink`` since the last run that flagged (a token re-scoped to fewer
    blueprints, a partial outage: Kandji answers 200 with a fraction of the fleet)."""

    after_days: Annotated[
        timedelta,
        Duration(
            at_least="0s",
            at_most="3650d",
            bare="d",
            why="how long a record may be unseen before it is flagged, at most ten years",
        ),
    ] = Field(
        ...,
        description="not seen in Kandji for this long (7d, 12h; a bare number is days), by the record's Connector Sync Time",
    )
    set: dict[str, FieldValue] = Field(
        ..., min_length=1, description="Oomnitza field -> value, sent once to a record gone from Kandji"
    )
    clear_when_seen: dict[str, FieldValue] = Field(
        default_factory=dict, description="Oomnitza field -> value, sent when a flagged record is back"
    )
    max_flagged: Annotated[Percent | int, Field(union_mode="left_to_right")] = Field(
        Percent(5),
        description="at most this many records flagged in one run: a number, or a percentage of the records "
        f"Oomnitza holds with a Kandji id (never fewer than {MAX_FLAGGED_FLOOR})",
    )
    max_listing_shrink: Percent = Field(
        Percent(20),
        description="flag nothing when Kandji lists this much fewer records than at the last run that flagged",
    )

    @field_validator("max_flagged", mode="before")
    @classmethod
    def _max_flagged(cls, value: Any) -> Any:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | str)
            or (isinstance(value, int) and value < 0)
        ):
            raise ValueError(f"{value!r}: a number of records (0 or more) or a percentage like '5%'")
        return Percent.parse(value) if isinstance(value, str) else value

    def flagging_limit(self, held: int) -> int:
        """The most records one run may flag, out of ``held`` Oomnitza records with a Kandji id."""
        if not isinstance(self.max_flagged, Percent):
            return self.max_flagged
        return max(MAX_FLAGGED_FLOOR, math.ceil(held * self.max_flagged / 100))

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys([*self.set, *self.clear_when_seen]))


@dataclass(frozen=True)
class MissingSettings:
    """An integration narrowed to what flagging records gone from Kandji reads (missing.py, safeguard.py):
    every field present, none Optional."""

    name: str
    type: Literal["assets", "users"]
    when_missing: WhenMissing
    kandji_id_field: str  # the Oomnitza field holding the Kandji id
    sync_time_field: str  # the Oomnitza field holding Connector Sync Time
    sync_key: list[str]
    batch_size: int
    outcome_timeout_seconds: float

    @property
    def kind(self) -> str:
        """What one record stands for in Kandji, in words."""
        return "devices" if self.type == "assets" else "users"


class Integration(Strict):
    name: str = Field(..., min_length=1, description="the descriptive name shown as the DAG's display name")
    type: Literal["assets", "users"] = Field(
        ..., description="what the file loads: Kandji devices as assets, or Kandji users as users"
    )
    description: str = Field("", description="shown on the tile and in the DAG's docs")
    kandji_conn_id: str = Field("kandji_default", description="the Airflow connection to Kandji")
    oomnitza_conn_id: str = Field("oomnitza_default", description="the Airflow connection to Oomnitza")
    integration_user: str | None = Field(
        None,
        description="deprecated, does nothing (a warning says so): run summaries show the Oomnitza connection's "
        "login (its Integration user field); delete the line",
    )
    preference: Preference = Field(
        Preference.CREATE_AND_UPDATE, description="what Oomnitza does with a record: create, update, or both"
    )
    software: Software | None = Field(None, description="assets: the devices' installed apps")
    users: Users | None = Field(None, description="users: which Kandji users, marked how")
    sync_key: list[str] = Field(
        ..., min_length=1, description="the Oomnitza field(s) a record is matched on (unique in Oomnitza)"
    )
    mappings: dict[str, Mapping] = Field(
        ..., min_length=1, description="each Oomnitza field (its external id) and where its value comes from"
    )
    schedule: Schedule = Field(default_factory=Schedule, description="when the DAG runs")
    load: Load = Field(default_factory=Load, description="how records are sent to Oomnitza")
    when_missing: WhenMissing | None = Field(
        None, description="flag Oomnitza records whose device or user left Kandji (never deleted)"
    )
    delta: Delta = Field(default_factory=Delta, description="delta loads: send only what changed")
    notify: IntegrationNotify | None = Field(None, description="who is told when a run fails or asks")
    deadline: (
        Annotated[
            timedelta,
            Duration(
                at_least="10s",
                at_most="30d",
                why="how long a run may take before the on_failure targets are told, at most 30 days",
            ),
        ]
        | None
    ) = Field(
        None,
        description="notify the on_failure targets when a run has not finished this long after it was queued",
    )
    confirmers: AirflowUserIds = Field(
        default_factory=list,
        max_length=50,
        description="Airflow user ids who may confirm what a safeguard stopped (Required Actions); empty: "
        "anyone allowed to answer",
    )
    confirm_within: Annotated[
        timedelta,
        Duration(
            at_least="1m",
            at_most="30d",
            why="a person needs at least a minute to answer, and a question older than 30 days is stale",
        ),
    ] = Field(
        timedelta(days=1),
        description="how long a safeguard's question waits for an answer; then nothing is done",
    )
    owner: str = Field("it-ops", description="the DAG's owner in Airflow")
    tags: list[str] = Field(
        default_factory=list, description="more tags on the DAG, beside kandji and oomnitza"
    )

    @field_validator("mappings", mode="before")
    @classmethod
    def _standard_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"field": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("sync_key", mode="before")
    @classmethod
    def _sync_key_shorthand(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Integration:
        standard = STANDARD_FIELDS[self.type]
        for target, mapping in self.mappings.items():
            if not is_field_name(target) and target not in ("APPLICATIONS", "SAAS"):
                raise ValueError(
                    f"mappings.{target}: Oomnitza fields are named by their external id in lower snake_case "
                    "(Assets > Customization shows it), e.g. serial_number"
                )
            if target in ("APPLICATIONS", "SAAS"):
                raise ValueError(
                    f"mappings.{target}: set by the integration itself; use software/users options"
                )
            if mapping.field is not None and mapping.field not in standard:
                close = difflib.get_close_matches(mapping.field, list(standard), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"mappings.{target}: {mapping.field!r} is not a standard Kandji {self.type} field; {hint}"
                    f"use one of {sorted(standard)}, or a custom mapping with path/constant/template"
                )
        for key in self.sync_key:
            if key not in self.mappings:
                raise ValueError(
                    f"sync_key: {key!r} is not a mapped Oomnitza field; map it under mappings or pick one of "
                    f"{sorted(self.mappings)}"
                )
        if self.type == "assets":
            if self.users is not None:
                raise ValueError("users: only for users integrations; assets integrations use software")
        elif self.software is not None:
            raise ValueError("software: only for assets integrations; users integrations use users")
        return self

    @model_validator(mode="after")
    def _deadline_has_someone_to_tell(self) -> Integration:
        if self.deadline is not None and (self.notify is None or not self.notify.on_failure):
            raise ValueError(
                "deadline: a missed deadline is told to the notify.on_failure targets; add notify: {on_failure: "
                "[<apprise connection id or URL>]} or remove deadline"
            )
        if self.notify is not None and self.notify.on_safeguard and self.when_missing is None:
            raise ValueError(
                "notify.on_safeguard: the safeguards guard when_missing, which is off in this file; remove "
                "on_safeguard or turn when_missing on"
            )
        return self

    @model_validator(mode="after")
    def _when_missing_consistent(self) -> Integration:
        if self.when_missing is not None:
            self._check_when_missing(self.when_missing)
        return self

    def _check_when_missing(self, option: WhenMissing) -> None:
        standard = "Device ID" if self.type == "assets" else "User ID"
        if self.kandji_id_field is None:
            raise ValueError(
                f"when_missing: needs the Kandji id mapped (e.g. kandji_{'device' if self.type == 'assets' else 'user'}"
                f"_id: {standard}): only records carrying it came from this integration"
            )
        if self.sync_time_field is None:
            raise ValueError(
                "when_missing: needs Connector Sync Time mapped (e.g. kandji_connector_sync_time: Connector "
                "Sync Time): it is how long ago a record was last seen in Kandji"
            )
        if self.type == "users" and (self.user_settings.integration_ids or self.user_settings.skip_archived):
            raise ValueError(
                "when_missing: needs every Kandji user listed; remove users.integration_ids and "
                "users.skip_archived, or when_missing (users left out would look gone from Kandji)"
            )
        for option_name, values in (("set", option.set), ("clear_when_seen", option.clear_when_seen)):
            for name in values:
                if not is_field_name(name):
                    raise ValueError(
                        f"when_missing.{option_name}.{name}: Oomnitza fields are named by their external id "
                        "in lower snake_case, e.g. status"
                    )
                owned = {*self.sync_key, self.kandji_id_field, self.sync_time_field}
                if name in owned:
                    raise ValueError(
                        f"when_missing.{option_name}.{name}: the sync key, the Kandji id and Connector Sync "
                        "Time identify the record and say when it was seen; set another field (e.g. status)"
                    )

    @property
    def when_missing_words(self) -> str:
        """What happens to records gone from Kandji, in one line (DAG docs, the Integrations page)."""
        option = self.when_missing
        if option is None:
            return "left as they are (when_missing is off)"
        words = f"after {days_words(option.after_days)} unseen, set {assignments_words(option.set)} once (never deleted)"
        if option.clear_when_seen:
            words += f"; back in Kandji, set {assignments_words(option.clear_when_seen)}"
        return words + "; only after a complete Kandji listing"

    @property
    def kandji_id_field(self) -> str | None:
        """The Oomnitza field holding the Kandji id (the Device ID or User ID mapping)."""
        id_path = "device_id" if self.type == "assets" else "id"
        return next(
            (
                t
                for t in self.mappings
                if self.resolved(t).paths == (id_path,) and self.resolved(t).converter is None
            ),
            None,
        )

    @property
    def sync_time_field(self) -> str | None:
        """The Oomnitza field holding Connector Sync Time (when Kandji was last read for the record)."""
        return next((t for t in self.mappings if self.resolved(t).special == "sync_time"), None)

    @property
    def missing_settings(self) -> MissingSettings | None:
        """What flagging records gone from Kandji needs (None: when_missing is off); the file's validation
        made sure both fields are mapped."""
        option, kandji_id, sync_time = self.when_missing, self.kandji_id_field, self.sync_time_field
        if option is None or kandji_id is None or sync_time is None:
            return None
        return MissingSettings(
            name=self.name,
            type=self.type,
            when_missing=option,
            kandji_id_field=kandji_id,
            sync_time_field=sync_time,
            sync_key=list(self.sync_key),
            batch_size=self.load.batch_size,
            outcome_timeout_seconds=self.load.outcome_timeout_seconds,
        )

    # -- derived ------------------------------------------------------------------------------
    @property
    def software_settings(self) -> Software:
        return self.software if self.software is not None else Software()

    @property
    def user_settings(self) -> Users:
        return self.users if self.users is not None else Users()

    def resolved(self, target: str) -> ResolvedMapping:
        """A mapping with its standard field expanded to its Kandji path and converter."""
        mapping = self.mappings[target]
        if mapping.field is not None:
            spec = STANDARD_FIELDS[self.type][mapping.field]
            converter = mapping.converter or (
                Converter(name=spec["converter"]) if "converter" in spec else None
            )
            return ResolvedMapping(
                label=mapping.field,
                paths=(spec["path"],) if "path" in spec else (),
                special=spec.get("special"),
                converter=converter,
                constant=None,
                template=None,
                clear_when_empty=mapping.clear_when_empty,
            )
        label = (
            f"path {mapping.path}" if mapping.path is not None
            else f"template {mapping.template!r}" if mapping.template is not None
            else f"constant {mapping.constant!r}"
        )  # fmt: skip
        return ResolvedMapping(
            label=label,
            paths=tuple(mapping.paths),
            special=None,
            converter=mapping.converter,
            constant=mapping.constant,
            template=mapping.template,
            clear_when_empty=mapping.clear_when_empty,
        )

    @property
    def needs_details(self) -> bool:
        return any(p.startswith("details.") for target in self.mappings for p in self.resolved(target).paths)


def load_integration(path: Path) -> Integration:
    """Read and validate one integration file (YAML safe loader; no code runs from the file)."""
    if not DAG_ID_PATTERN.match(path.stem):
        raise IntegrationFileError(
            f"Invalid integration file {path}: the file name becomes the DAG id; use letters, digits and underscores"
        )
    integration = validated_file(path, Integration, INTEGRATIONS.what, IntegrationFileError)
    if integration.integration_user is not None:
        warnings.warn(
            f"{path}: integration_user does nothing and will be removed; run summaries show the Oomnitza "
            "connection's login (its Integration user field) instead. Delete the line.",
            SettingsFileDeprecation,
            stacklevel=2,
        )
    return integration


INTEGRATIONS: Kind = Kind(
    noun="integration",
    what="integration file",
    folder_env="KANDJI_OOMNITZA_INTEGRATIONS_DIR",
    config_option="integrations_folder",
    default_folder="integrations",
    dag_id=names.integration_dag_id,
    load=load_integration,
    error=IntegrationFileError,
    marker="mappings",
)

if __name__ == "__main__":  # python -m kandji_oomnitza.integrations.config FILE...: checks integration files
    sys.exit(main(sys.argv[1:], (INTEGRATIONS,)))
