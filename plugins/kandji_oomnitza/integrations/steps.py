"""The steps of an integration run: check, extract, transform, load (the report is ``report.py``). Plain
functions over hooks and frames, so the DAG's tasks stay thin and every step is testable on its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from kandji_oomnitza.common.kandji_values import is_empty, valid_id
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.exceptions import FieldCheckError
from kandji_oomnitza.hooks.errors import ApiError
from kandji_oomnitza.hooks.kandji import KandjiHook
from kandji_oomnitza.hooks.oomnitza import SENT, UNCONFIRMED, Batch, OomnitzaHook, RunResult
from kandji_oomnitza.hooks.oomnitza_protocol import named_records
from kandji_oomnitza.integrations.accounting import FAILED_SILENTLY, silent_failures, split
from kandji_oomnitza.integrations.config import Integration, UserSelection
from kandji_oomnitza.integrations.delta import DeltaPlan
from kandji_oomnitza.integrations.handover import BatchProblem, DeltaSummary, FieldCheck, LoadResult, Outcome
from kandji_oomnitza.integrations.mapping import (
    ID,
    LABEL,
    PROBLEM,
    SourceColumns,
    apply_mappings,
    plain,
    to_oomnitza,
)
from kandji_oomnitza.integrations.software import Applications, SoftwareResult, collect

log = logging.getLogger(__name__)
SAAS_COLUMN = "_saas"
PREVIEW_FIELDS = 5


def source_paths(integration: Integration) -> list[str]:
    paths = [p for target in integration.mappings for p in integration.resolved(target).paths]
    always = ["platform"] if integration.type == "assets" else ["archived"]
    return list(dict.fromkeys([*always, *paths]))


# -- check --------------------------------------------------------------------------------------
def check_fields(integration: Integration, oomnitza: OomnitzaHook) -> FieldCheck:
    """Stop before loading anything when Oomnitza's field metadata shows a mapped field missing or a
    sync key that is not unique. Metadata that cannot be read (no permission, not found, an outage)
    is a warning, not a failure: the load goes on, and a missing field then fails record by record.
    A wrong token fails at once (every other Oomnitza call would fail the same way). Off with
    ``load.check_fields: false``."""
    if not integration.load.check_fields:
        return FieldCheck()
    try:
        fields = oomnitza.field_metadata(integration.type)
    except ApiError as exc:
        if exc.status == 401:
            raise
        warning = (
            f"Oomnitza's {integration.type} field metadata could not be read, so the mapped fields were not "
            f"checked before loading ({shorten(exc, 300)})"
        )
        log.warning(warning)
        return FieldCheck(warnings=[warning], calls=oomnitza.calls)
    written = list(integration.mappings)
    if integration.when_missing is not None:
        written += [f for f in integration.when_missing.fields if f not in written]
    unknown = [name for name in written if name not in fields]
    if unknown:
        raise FieldCheckError(
            f"{integration.name}: Oomnitza has no {integration.type} field(s) {unknown} (mapped, or set by "
            f"when_missing, in the integration file). Create them under {integration.type.title()} > "
            "Customization with these external ids, or fix the names in the file."
        )
    not_unique = [k for k in integration.sync_key if fields[k].get("unique") is False]
    if not_unique:
        raise FieldCheckError(
            f"{integration.name}: sync key field(s) {not_unique} are not Unique in Oomnitza; only unique "
            "fields can be sync keys. Pick another sync_key or mark the field Unique."
        )
    return FieldCheck(checked_fields=sorted(written), calls=oomnitza.calls)


# -- extract ------------------------------------------------------------------------------------
def extract_devices(integration: Integration, kandji: KandjiHook, on_page=None) -> pd.DataFrame:
    """Kandji devices, page by page, into a frame of the paths the mappings read (a page's records are
    dropped once their values are taken); ``on_page`` sees each page as it arrives. A device whose details
    vanished mid-run (404) is kept, marked with the problem, and rejected by the transform; any other
    failure to read details stops the extract."""
    columns = SourceColumns(source_paths(integration), id_path="device_id", label_path="device_name")
    for page in kandji.iter_device_pages():
        if on_page is not None:
            on_page(page)
        if integration.needs_details:
            for device in page:
                if not valid_id(device.get("device_id")):
                    continue  # rejected by the transform, with its reason
                try:
                    device["details"] = kandji.get_device_details(device["device_id"])
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    device[PROBLEM] = (
                        "Kandji has no details for this device (HTTP 404): it probably left Kandji during the run"
                    )
        columns.add(page)
        log.info("Kandji devices so far: %d", len(columns))
    return columns.frame()


def extract_assets(
    integration: Integration, kandji: KandjiHook
) -> tuple[pd.DataFrame, SoftwareResult | None]:
    """The devices and, with software on, every device's apps (the Prism route running in the
    background while the devices are listed)."""
    if not integration.software_settings.enabled:
        return extract_devices(integration, kandji), None
    return collect(
        kandji, integration.software_settings, lambda on_page: extract_devices(integration, kandji, on_page)
    )


def extract_users(integration: Integration, kandji: KandjiHook) -> pd.DataFrame:
    """Kandji users; one listed twice (several directory integrations) is kept once. A user without an
    id cannot be told apart from another, so each is kept and rejected by the transform."""
    settings = integration.user_settings
    filters = {"archived": "false"} if settings.skip_archived else {}
    columns = SourceColumns(source_paths(integration), id_path="id", label_path="name")
    seen: set[str] = set()
    integration_ids: list[str | None] = [*settings.integration_ids] if settings.integration_ids else [None]
    for integration_id in integration_ids:
        for page in kandji.iter_user_pages(integration_id=integration_id, **filters):
            for user in page:
                user_id = user.get("id")
                if not is_empty(user_id):
                    if str(user_id) in seen:
                        continue
                    seen.add(str(user_id))
                columns.add([user])
    return columns.frame()


# -- transform ----------------------------------------------------------------------------------
def transform(integration: Integration, source: pd.DataFrame, sync_time: str) -> pd.DataFrame:
    """Mapped records and rejected ones in one frame; rejected rows carry ``_reason``. The software
    stays in its own frame until the load: it would outweigh the records a hundred times over."""
    mapped = apply_mappings(source, integration, sync_time)
    records = mapped.records
    if (
        integration.type == "users"
        and integration.user_settings.selection is UserSelection.USER_PLUS_SAAS_USER
    ):
        # By row, not by id: the rows kept are the source rows, and ids may repeat or be missing.
        archived = source.loc[records.index, "archived"].map(lambda v: str(v).lower() == "true")
        records[SAAS_COLUMN] = archived.map(
            lambda a: json.dumps([{"name": "Kandji", "status": "archived" if a else "active"}])
        )
    rejected = mapped.rejected.rename(columns={"reason": "_reason", "sync_key": "_sync_key"})
    out = pd.concat([records, rejected], ignore_index=True)
    for column in out.columns:
        if out[column].dtype == object or out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def seen_ids(index: pd.DataFrame) -> set[str]:
    """The Kandji ids this run's listing holds (the transform's index), as flag_missing compares them."""
    return {str(i) for i in index[ID] if not is_empty(i)}


def handover_seal_scope(dag_id: str, run_id: str, task_id: str) -> str:
    """What a hand-over flag_missing decides on is sealed over (common/seal.py): the run and the task.
    XComs can be edited through Airflow's REST API by anyone allowed to edit the DAG's task instances; the
    seal tells flag_missing that the listing and ids it reads are the ones the run's own tasks wrote."""
    return f"{dag_id}/{run_id}/{task_id}"


def report_index(integration: Integration, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of the transformed frame the report needs: which records were rejected and why,
    and the sync keys that name a record in Oomnitza's messages. A few columns of small values."""
    wanted = [ID, LABEL, *integration.sync_key, "_reason", "_sync_key"]
    return frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]


def payloads(
    integration: Integration, records: pd.DataFrame, software: pd.DataFrame | None = None
) -> Iterator[dict[str, Any]]:
    """Oomnitza records one by one: app and SaaS lists are built only as each record is sent."""
    applications = Applications(software) if software is not None else None
    saas = records[SAAS_COLUMN] if SAAS_COLUMN in records.columns else [None] * len(records)
    for record, record_id, saas_list in zip(
        to_oomnitza(records, integration), records[ID], saas, strict=True
    ):
        if applications is not None and record_id in applications:
            record["APPLICATIONS"] = applications.get(record_id)
        if isinstance(saas_list, str):
            record["SAAS"] = json.loads(saas_list)
        yield record


def preview(integration: Integration, record: dict[str, Any]) -> dict[str, Any]:
    """A record as a person skims it: its first mapped fields, and how many apps or SaaS entries."""
    shown = {k: record[k] for k in list(integration.mappings)[:PREVIEW_FIELDS] if k in record}
    if "APPLICATIONS" in record:
        shown["APPLICATIONS"] = f"{len(record['APPLICATIONS'])} apps"
    if "SAAS" in record:
        shown["SAAS"] = ", ".join(f"{s.get('name')} ({s.get('status')})" for s in record["SAAS"])
    return shown


# -- load ---------------------------------------------------------------------------------------
def rejects_of(rejected: pd.DataFrame) -> list[tuple[dict[str, Any], str]]:
    return [
        (
            {"kandji_id": plain(row[ID]), "name": plain(row[LABEL]), "sync_key": plain(row["_sync_key"])},
            str(row["_reason"]),
        )
        for row in rejected[[ID, LABEL, "_sync_key", "_reason"]].to_dict("records")
    ]


def load(
    integration: Integration,
    oomnitza: OomnitzaHook,
    frame: pd.DataFrame,
    *,
    software: pd.DataFrame | None = None,
    portion: str,
    delta: DeltaPlan | None = None,
) -> tuple[LoadResult, BaseException | None]:
    """Send the records (and the rejected ones, with their reasons) under one portion, finalize it, and
    read Oomnitza's outcome. Returns the result (for the report: counts, the outcome, and the ledger of
    every batch that did not arrive cleanly) and the failure that stopped the sending, if any, which
    the caller raises once the result is stored."""
    records, rejected = split(frame)
    run = oomnitza.start_run(
        data_type=integration.type,
        sync_field=integration.sync_key,
        preference=integration.preference,
        batch_size=integration.load.batch_size,
        portion=portion,
        concurrency=integration.load.concurrency,
    )
    rejects = rejects_of(rejected)
    stream = payloads(integration, records, software)  # each record built as its batch goes out
    if delta is not None:
        stream = delta.select(stream, records[ID])
    try:
        run.add_many(stream)
        run.reject(rejects)
    finally:
        finished = run.finish(timeout_seconds=integration.load.outcome_timeout_seconds)
    pinned = 0
    own_reasons = {reason for _, reason in rejects}
    sent_view = records if delta is None or delta.full else records.iloc[delta.sent_positions]
    if finished.outcome is not None:
        counts = ", ".join(f"{n} {k}" for k, n in finished.outcome.counts.items())
        log.info("Oomnitza run %s: %s (%s)", portion, finished.outcome.status, counts)
        pinned = _pinpoint_unaccounted(integration, sent_view, finished, own_reasons)
    result = load_result(finished, total_records=len(records), total_rejects=len(rejected))
    result.silent_failures_named = pinned
    if delta is not None:
        for _ in stream:  # the rest of the selection, if the load stopped: never sent, reported as such
            pass
        sent_view = records if delta.full else records.iloc[delta.sent_positions]
        confirmed = _confirmed(integration, sent_view, finished, own_reasons, pinned)
        delta.store = delta.new_store(
            {delta.sent_positions[p] for p in confirmed},
            (str(i) for i in frame[ID] if not is_empty(i)),
            finished.outcome is not None,
        )
        result.delta = DeltaSummary(
            **delta.summary(), sent_positions=None if delta.full else delta.sent_positions
        )
        log.info("Delta load: %s", delta.summary())
    return result, run.failure


def _confirmed(
    integration: Integration, sent: pd.DataFrame, finished: RunResult, own_reasons: set[str], pinned: int
) -> set[int]:
    """Positions (in the run) of the records Oomnitza's run log confirms: sent in a batch that arrived,
    not named by a failed or skipped message. Nothing is confirmed without the run log, or when
    Oomnitza counted failures it did not pin to records."""
    outcome, run = finished.outcome, finished.run
    if outcome is None:
        return set()
    silent = silent_failures(
        outcome.counts.get("failed", 0), outcome.messages.get("failed", []), own_reasons, run.rejected_sent
    )
    if silent > pinned or outcome.total < run.sent + run.rejected_sent:
        return set()
    named = set(named_records(outcome.messages, ("failed", "skipped")))
    arrived = [p for b in run.batches if b.kind == "records" and b.state == SENT for p in b.positions]
    keys = sent[list(integration.sync_key)]
    return {p for p in arrived if not any(str(plain(v)) in named for v in keys.iloc[p] if not is_empty(v))}


def _pinpoint_unaccounted(
    integration: Integration, records: pd.DataFrame, finished: RunResult, own_reasons: set[str]
) -> int:
    """Name the records behind counts that do not add up: Oomnitza counting fewer records than were
    sent, or counting failures without a message. Such records are the sent ones no message names
    (INFERRED: Oomnitza's messages name a record by its sync-key value). When that pins them down,
    they are marked unconfirmed, or failed without a message when every record sent was counted.
    Returns how many silent failures were pinned down (the report lists the rest as a count)."""
    run, outcome = finished.run, finished.outcome
    if outcome is None:
        return 0
    expected = run.sent + run.rejected_sent
    uncounted = max(expected - outcome.total, 0)
    silent = silent_failures(
        outcome.counts.get("failed", 0), outcome.messages.get("failed", []), own_reasons, run.rejected_sent
    )
    if not uncounted and not silent:
        return 0
    named = set(named_records(outcome.messages, tuple(outcome.messages)))
    sent = sorted(p for b in run.batches if b.kind == "records" and b.state == SENT for p in b.positions)
    keys = records[list(integration.sync_key)].iloc[sent]
    missing = [
        position
        for position, row in zip(sent, keys.itertuples(index=False), strict=True)
        if not any(str(plain(v)) in named for v in row if not is_empty(v))
    ]
    if not 0 < len(missing) <= uncounted + silent:
        return 0  # the messages do not name records: the report gives the counts only
    if uncounted:
        state = UNCONFIRMED
        detail = (
            f"Oomnitza's run log does not mention this record (it accounts for {outcome.total} of {expected} "
            "records sent)"
        )
    else:
        state = FAILED_SILENTLY
        detail = "Oomnitza counted this record as failed without saying why; see its connector logs"
    run.batches.append(Batch("records", missing, state=state, detail=detail))
    moved = set(missing)
    for batch in run.batches:
        if batch.kind == "records" and batch.state == SENT:
            batch.positions = [p for p in batch.positions if p not in moved]
    return len(missing) if state == FAILED_SILENTLY else 0


def load_result(finished: RunResult, *, total_records: int, total_rejects: int) -> LoadResult:
    """What the report needs of a load, small enough for XCom: counts, the outcome's counts and the
    messages the error log names, and the batches that did not arrive cleanly (positions)."""
    run, outcome = finished.run, finished.outcome
    return LoadResult(
        portion=run.portion,
        records=total_records,
        rejects=total_rejects,
        added_to_run=dict(run.added),
        sent=run.sent,
        rejected_sent=run.rejected_sent,
        batches=len(run.batches),
        problems=[
            BatchProblem(kind=b.kind, positions=b.positions, state=b.state, detail=b.detail)
            for b in run.batches
            if b.state != SENT
        ],
        failure=shorten(run.failure, 500) if run.failure else None,
        finalize_error=finished.finalize_error,
        outcome_error=finished.outcome_error,
        # Only the messages the error log needs: a message per unchanged record would bloat XCom.
        outcome=Outcome(
            status=outcome.status,
            counts=outcome.counts,
            messages={k: outcome.messages.get(k, []) for k in ("failed", "skipped", "Fatal Error")},
        )
        if outcome is not None
        else None,
        calls=run.hook.calls,
        retries=run.hook.retries,
    )


def dry_run(
    integration: Integration,
    frame: pd.DataFrame,
    software: pd.DataFrame | None,
    write_payloads,
    delta: DeltaPlan | None = None,
) -> LoadResult:
    """Everything but the load: how many records would be sent, a readable preview of the first
    ones, and every payload written by ``write_payloads(lines)`` (JSON lines) for whoever wants them."""
    records, rejected = split(frame)
    sample: list[dict[str, Any]] = []

    def lines() -> Iterable[str]:
        stream = payloads(integration, records, software)
        for record in delta.select(stream, records[ID]) if delta is not None else stream:
            if len(sample) < PREVIEW_FIELDS:
                sample.append(preview(integration, record))
            yield json.dumps(record, default=str) + "\n"

    location = write_payloads(lines())
    would_send = len(records) if delta is None else len(delta.sent_positions)
    log.info("Dry run: %d records would be sent, %d rejected; nothing sent", would_send, len(rejected))
    return LoadResult(
        dry_run=True,
        records=len(records),
        rejects=len(rejected),
        would_send=would_send,
        delta=DeltaSummary(**delta.summary(), sent_positions=None) if delta is not None else None,
        sample=sample,
        payloads=location,
    )
