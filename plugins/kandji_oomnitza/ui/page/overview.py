"""What the Integrations page shows, built from the integration files (the same models the DAGs use),
Airflow's own records of each DAG and its runs, and the run summaries the ``report`` task publishes.

Nothing here calls Kandji or Oomnitza: the connections are only read to name the tenant and the
instance (their hosts, never a token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel

from kandji_oomnitza import names
from kandji_oomnitza.integrations.config import INTEGRATIONS, Integration
from kandji_oomnitza.integrations.handover import RunSummary
from kandji_oomnitza.settings_files import SettingsFile, duration_words, scan


def read_integration_files(folder: Path | None = None) -> list[SettingsFile]:
    """Every integration file, each validated on its own so one bad file cannot hide the others."""
    return scan(INTEGRATIONS, folder)


# -- response models (the page's JSON, also shown in the app's OpenAPI docs) -----------------------
class Endpoint(BaseModel):
    connection_id: str
    host: str | None = None
    problem: str | None = None


class Schedule(BaseModel):
    cron: str | None
    timezone: str
    description: str
    next_run: str | None = None
    paused: bool | None = None


class RunCounts(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0


class RunRow(BaseModel):
    """A run as the page shows it."""

    run_id: str
    state: str | None
    run_type: str | None
    dry_run: bool
    queued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    kandji_records: int | None = None
    records_sent: int | None = None
    would_send: int | None = None
    not_loaded: int | None = None
    flagged_as_missing: int | None = None  # a dry run: how many would be
    back_in_kandji: int | None = None
    when_missing: str | None = None
    skipped_reason: str | None = None  # the run skipped itself (newest_run_only): why, in words
    preview: list[dict[str, str]] | None = None  # a dry run: its first records as they would be sent
    dry_run_payloads: str | None = None  # a dry run: where every payload it would have sent is
    rejected_before_load: int | None = None
    safeguard: str | None = None  # a safeguard stopped the flagging: its sentence
    safeguard_confirmed_by: str | None = (
        None  # who confirmed what a safeguard stopped (Airflow's HITL record)
    )
    delta: str | None = None  # "delta", "full: <why>" or "off"
    skipped_unchanged: int | None = None
    counts: RunCounts | None = None
    has_summary: bool = False
    summary_hidden: bool = False  # the user may not read this DAG's XComs, where summaries live
    has_error_log: bool = False
    airflow_url: str


class Tile(BaseModel):
    id: str
    file: str
    valid: bool
    error: str | None = None
    name: str
    type: Literal["assets", "users"] | None = None
    description: str = ""
    kandji: Endpoint | None = None
    oomnitza: Endpoint | None = None
    preference: str | None = None
    software: str | None = None
    user_selection: str | None = None
    when_missing: str | None = None
    delta: str | None = None
    sync_key: list[str] = []
    schedule: Schedule | None = None
    in_airflow: bool = False
    can_trigger: bool = False
    last_run: RunRow | None = None


class MappingRow(BaseModel):
    oomnitza_field: str
    source_kind: Literal["standard", "path", "template", "constant"]
    source: str
    kandji_paths: list[str]
    converter: str | None
    when_empty: str
    sync_key: bool


class Detail(Tile):
    mappings: list[MappingRow] = []
    runs: list[RunRow] = []


# -- builders ----------------------------------------------------------------------------------------
def endpoint(conn_id: str, base_url) -> Endpoint:
    """The host a connection points at, or why it cannot be used; the hook does the reading."""
    from kandji_oomnitza.common.redaction import shorten

    try:
        url = urlsplit(base_url())
    except Exception as exc:
        return Endpoint(connection_id=conn_id, problem=shorten(str(exc).splitlines()[0], 300))
    # The host and port only: never user info, whatever a connection holds.
    netloc = url.hostname + (f":{url.port}" if url.port else "") if url.hostname else ""
    return Endpoint(connection_id=conn_id, host=netloc + url.path.rstrip("/"))


def kandji_endpoint(conn_id: str) -> Endpoint:
    from kandji_oomnitza.hooks.kandji import KandjiHook

    return endpoint(conn_id, lambda: KandjiHook(conn_id).api_base_url)


def oomnitza_endpoint(conn_id: str) -> Endpoint:
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    return endpoint(conn_id, lambda: OomnitzaHook(conn_id).root_url())


def software_words(integration: Integration) -> str | None:
    if integration.type != "assets":
        return None
    software = integration.software_settings
    return f"on ({software.route.value} route)" if software.enabled else "off"


def schedule_of(integration: Integration, dag_model: Any | None) -> Schedule:
    cron = integration.schedule.cron
    if dag_model is not None and dag_model.timetable_description:
        description = dag_model.timetable_description
    else:
        description = cron or "Manual runs only"
    if cron is None:
        description = "Manual runs only (Run now, or trigger the DAG)"
    next_run = getattr(dag_model, "next_dagrun_create_after", None) if cron else None
    return Schedule(
        cron=cron,
        timezone=integration.schedule.timezone,
        description=description,
        next_run=next_run.isoformat() if next_run else None,
        paused=dag_model.is_paused if dag_model is not None else None,
    )


def tile(
    entry: SettingsFile,
    *,
    dag_model: Any | None,
    last_run: RunRow | None,
    can_trigger: bool,
    tile_type: type[Tile] = Tile,
) -> Tile:
    integration = entry.model
    if integration is None:
        return tile_type(
            id=entry.dag_id, file=entry.path.name, valid=False, error=entry.error, name=entry.path.name
        )
    in_airflow = dag_model is not None and not dag_model.is_stale
    if not in_airflow:
        # No next run or pause state from a DAG Airflow does not have (or no longer parses): say so.
        dag_model = None
    return tile_type(
        id=entry.dag_id,
        file=entry.path.name,
        valid=True,
        name=integration.name,
        type=integration.type,
        description=integration.description,
        kandji=kandji_endpoint(integration.kandji_conn_id),
        oomnitza=oomnitza_endpoint(integration.oomnitza_conn_id),
        preference=integration.preference.value,
        software=software_words(integration),
        user_selection=integration.user_settings.selection.value if integration.type == "users" else None,
        when_missing=integration.when_missing_words,
        delta=(
            f"on, full sync every {duration_words(integration.delta.full_sync_every)}"
            if integration.delta.enabled
            else "off"
        ),
        sync_key=list(integration.sync_key),
        schedule=schedule_of(integration, dag_model),
        in_airflow=in_airflow,
        can_trigger=can_trigger and in_airflow,
        last_run=last_run,
    )


def mapping_rows(integration: Integration) -> list[MappingRow]:
    rows = []
    for target, mapping in integration.mappings.items():
        resolved = integration.resolved(target)
        if mapping.field is not None:
            kind, source = "standard", mapping.field
        elif mapping.path is not None:
            kind, source = "path", ", ".join(mapping.paths)
        elif mapping.template is not None:
            kind, source = "template", mapping.template
        else:
            kind, source = "constant", repr(mapping.constant)
        converter = resolved.converter
        converter_words = None
        if converter is not None:
            converter_words = converter.name
            if converter.name == "join":
                converter_words += f" (separator {converter.separator!r})"
        sync_time = resolved.special == "sync_time"
        paths = ["(the run's sync time)"] if sync_time else list(resolved.paths)
        rows.append(
            MappingRow(
                oomnitza_field=target,
                source_kind=kind,
                source=source,
                kandji_paths=paths,
                converter=converter_words,
                when_empty="clear the Oomnitza field"
                if resolved.clear_when_empty
                else "keep Oomnitza's value",
                sync_key=target in integration.sync_key,
            )
        )
    return rows


def iso_or_none(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_summary(
    dag_id: str,
    run: Any,
    summary: Any,
    error_log_exists: bool,
    *,
    summary_hidden: bool = False,
    skipped_reason: Any = None,
) -> RunRow:
    """A DAG run as the page shows it; ``summary`` is the report task's XCom (absent while running, and
    shown as nothing when it is not a run summary: XComs can be edited by hand)."""
    conf = run.conf or {}
    read = RunSummary.read(summary)
    return RunRow(
        run_id=run.run_id,
        state=str(run.state) if run.state is not None else None,
        run_type=str(run.run_type) if run.run_type is not None else None,
        dry_run=read.dry_run if read else bool(conf.get("dry_run")),
        queued_at=iso_or_none(run.queued_at),
        started_at=iso_or_none(run.start_date),
        ended_at=iso_or_none(run.end_date),
        kandji_records=read.kandji_records if read else None,
        records_sent=read.records_sent if read else None,
        would_send=read.would_send if read else None,
        not_loaded=read.not_loaded if read else None,
        flagged_as_missing=read.flagged if read else None,
        back_in_kandji=read.back_in_kandji if read else None,
        when_missing=read.when_missing if read else None,
        safeguard=_text(read.safeguard) if read else None,
        skipped_reason=_text(skipped_reason),
        preview=_preview(read.preview) if read else None,
        dry_run_payloads=_text(read.dry_run_payloads) if read else None,
        rejected_before_load=read.rejected_before_load if read else None,
        safeguard_confirmed_by=_text(read.safeguard_confirmed_by) if read else None,
        delta=read.delta if read else None,
        skipped_unchanged=read.skipped_unchanged if read else None,
        counts=RunCounts(**read.outcome_counts()) if read else None,
        has_summary=read is not None,
        summary_hidden=summary_hidden,
        has_error_log=error_log_exists,
        airflow_url=f"dags/{quote(dag_id)}/runs/{quote(run.run_id, safe='')}",
    )


def _preview(value: Any) -> list[dict[str, str]] | None:
    """A dry run's preview as text cells (at most 10 records of 20 fields: a glance, not the payloads)."""
    if not isinstance(value, list):
        return None
    return [
        {str(k)[:100]: str(v)[:300] for k, v in list(record.items())[:20]}
        for record in value[:10]
        if isinstance(record, dict)
    ]


def skip_reasons(session: Any, dag_id: str, run_ids: list[str]) -> dict[str, Any]:
    """Why each run skipped itself, by run id: the reason its first task pushed (newest_run_only)."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id.in_(run_ids),
            XComModel.task_id == names.NEWEST_RUN_ONLY,
            XComModel.key == names.SKIPPED,
            XComModel.map_index == -1,
        )
    ).all()
    return {row.run_id: XComModel.deserialize_value(row) for row in rows}


def _text(value: Any) -> str | None:
    return str(value)[:1000] if value else None


SUMMARY_KEYS = (names.RETURN_VALUE, names.SUMMARY)  # names.SUMMARY is also pushed by a run that fails


def run_summaries(session: Any, dag_id: str, run_ids: list[str], task_id: str) -> dict[str, Any]:
    """Each run's summary XCom from ``task_id`` (its return value, else the "summary" a failing run
    pushed), by run id."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id.in_(run_ids),
            XComModel.task_id == task_id,
            XComModel.key.in_(SUMMARY_KEYS),
            XComModel.map_index == -1,
        )
    ).all()
    found: dict[str, Any] = {}
    for row in rows:
        value = XComModel.deserialize_value(row)
        if isinstance(value, dict) and (row.run_id not in found or row.key == names.RETURN_VALUE):
            found[row.run_id] = value
    return found
