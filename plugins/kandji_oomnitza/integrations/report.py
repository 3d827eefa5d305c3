"""The run report: every Kandji record accounted for, the error log, and the run summary.

Accounting rule: every Kandji record ends up loaded into Oomnitza, or in the run's error log with what
happened to it and why: rejected before loading, refused or failed or skipped by Oomnitza, sent but
unconfirmed, or never sent. That holds whatever broke: the report runs whatever happened upstream, and
reads only what each step handed over (``handover.py``; None where a step did not finish).

Artifacts go to ``<reports path>/<dag_id>/<run folder>/``: ``errors.csv`` for every run, and
``dry_run_payloads.jsonl`` for a dry run. The reports path is the Airflow Variable
``kandji_oomnitza_reports_path`` (any ObjectStoragePath URL: ``s3://conn@bucket/reports``,
``file:///shared/reports``), by default ``file://$AIRFLOW_HOME/kandji_oomnitza_reports``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kandji_oomnitza.common.kandji_values import is_empty
from kandji_oomnitza.common.redaction import redact, shorten
from kandji_oomnitza.exceptions import RunIncomplete, SafeguardStopped, TooManyFailures
from kandji_oomnitza.hooks.oomnitza import REFUSED, UNCONFIRMED, UNSENT
from kandji_oomnitza.hooks.oomnitza_protocol import Preference, named_in
from kandji_oomnitza.integrations.config import Integration, assignments_words
from kandji_oomnitza.integrations.handover import (
    Calls,
    ExtractStats,
    FieldCheck,
    LoadResult,
    MissingEntry,
    MissingResult,
    Outcome,
    Retries,
    RunSummary,
)
from kandji_oomnitza.integrations.mapping import ID, LABEL, plain
from kandji_oomnitza.integrations.safeguard import MAX_FLAGGED
from kandji_oomnitza.settings_files import days_words

REPORTS_VARIABLE = "kandji_oomnitza_reports_path"
ERROR_LOG = "errors.csv"
DRY_RUN_PAYLOADS = "dry_run_payloads.jsonl"
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# The error log's stages, and which of them count as failures toward load.max_failed_records.
REJECTED = "rejected before loading"
FAILED = "failed in Oomnitza"
FAILED_SILENTLY = "failed in Oomnitza, without a message"
SKIPPED = "skipped in Oomnitza"
FATAL = "fatal error in Oomnitza"
WITHOUT_SOFTWARE = "loaded without software"
FLAGGED = "flagged as missing"  # gone from Kandji for longer than when_missing.after_days
WOULD_FLAG = "would be flagged as missing (dry run)"
BACK = "back in Kandji"  # flagged before, seen again: clear_when_seen sent
WOULD_CLEAR = "would be cleared, back in Kandji (dry run)"
NOT_FLAGGED = "not flagged as missing"
HELD_BACK = (
    "not flagged: stopped by the safeguard"  # gone from the listing, kept by max_flagged (safeguard.py)
)
FAILURE_STAGES = {REJECTED, FAILED, FAILED_SILENTLY, FATAL, REFUSED, UNSENT, NOT_FLAGGED}
# Not failures: skipped by the preference, possibly loaded (unconfirmed), loaded without its app list.
ERROR_LOG_COLUMNS = ["stage", "sync_key", "kandji_id", "name", "reason"]


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records to send, rejected records), each in the frame's order: the load's positions refer to it."""
    if "_reason" not in frame.columns:
        return frame, frame.iloc[0:0]
    rejected = frame["_reason"].notna()
    return frame[~rejected], frame[rejected]


# -- where a run's artifacts live -------------------------------------------------------------------------
def default_reports_root() -> str:
    return "file://" + os.path.join(
        os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kandji_oomnitza_reports"
    )


def reports_root() -> str:
    """The reports path as a task sees it (the Task SDK's Variable)."""
    from airflow.sdk import Variable

    return Variable.get(REPORTS_VARIABLE, default=default_reports_root())


def run_folder(run_id: str) -> str:
    """A folder name per run id: readable, and never shared by two run ids (``run:1`` and ``run_1``
    differ in their hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def artifact_path(root: str, dag_id: str, run_id: str, name: str = ERROR_LOG):
    """Where a run's artifact lives; the Integrations page finds the error log the same way."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / run_folder(run_id) / name


def write_artifact(dag_id: str, run_id: str, name: str, chunks: Iterable[str]) -> str:
    target = artifact_path(reports_root(), dag_id, run_id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(chunk)
    return str(target)


# -- the error log --------------------------------------------------------------------------------------
def safe_cell(value: Any) -> str:
    """Text for a CSV cell that a spreadsheet will not run as a formula, and that holds no credential."""
    text = redact("" if value is None else value)
    return "'" + text if text.startswith(SPREADSHEET_TRIGGERS) else text


def _row(stage: str, record: dict[str, Any] | None, reason: str, sync_key: str = "") -> dict[str, str]:
    record = record or {}
    return {
        "stage": stage,
        "sync_key": sync_key or plain(record.get("_sync_key")) or "",
        "kandji_id": plain(record.get(ID)) or "",
        "name": plain(record.get(LABEL)) or "",
        "reason": reason,
    }


def error_rows(
    integration: Integration,
    index: pd.DataFrame | None,
    loaded: LoadResult | None,
    *,
    software_unread: dict[str, str] | None = None,
    not_loaded_because: str | None = None,
) -> list[dict[str, str]]:
    """Every record that was not (certainly) loaded, with its stage and reason.

    :param index: the transform's report index (None when the transform did not finish)
    :param loaded: the load's result (None when the load did not run)
    :param not_loaded_because: why nothing was sent, when the load did not run
    """
    if index is None:
        return []
    records, rejected = split(index)
    records = records.assign(_sync_key=_identities(integration, records))
    rows = [_row(REJECTED, r, str(r["_reason"])) for r in rejected.to_dict("records")]
    if loaded is None:
        why = not_loaded_because or "the load did not run"
        return rows + [_row(UNSENT, r, why) for r in records.to_dict("records")]
    if loaded.dry_run:
        return rows
    if (
        loaded.sent_positions is not None
    ):  # a delta load: the run's positions are those of the changed records
        records = records.iloc[loaded.sent_positions]

    def at(positions: Iterable[int]) -> list[dict[str, Any]]:
        return records.iloc[list(positions)].to_dict("records")

    listed: set[int] = set()
    for problem in loaded.problems:
        if problem.kind != "records":
            continue  # rejected records: listed above, whatever became of their copy in Oomnitza
        listed.update(problem.positions)
        rows += [_row(problem.state, r, problem.detail) for r in at(problem.positions)]
    added = loaded.added_to_run.get("records", len(records))
    stopped = loaded.failure or "the load stopped"
    rows += [_row(UNSENT, r, f"not sent: {stopped}") for r in at(range(added, len(records)))]
    if loaded.outcome is None:
        why = loaded.outcome_error or loaded.finalize_error or "Oomnitza's run log was not read"
        unknown = (p for p in range(added) if p not in listed)
        return rows + [_row(UNCONFIRMED, r, f"Oomnitza's outcome is unknown: {why}") for r in at(unknown)]
    rows += outcome_rows(
        integration,
        records,
        loaded.outcome,
        {r["reason"] for r in rows if r["stage"] == REJECTED},
        rejects_sent=loaded.rejected_sent,
        already_named=loaded.silent_failures_named,
    )
    for device_id, why in (software_unread or {}).items():
        match = records[records[ID] == device_id]
        record = match.iloc[0].to_dict() if len(match) else {ID: device_id}
        rows.append(_row(WITHOUT_SOFTWARE, record, f"{why}; Oomnitza keeps the software it had"))
    return rows


def _identities(integration: Integration, records: pd.DataFrame) -> list[str]:
    """Each record's sync-key identity as the transform writes it for rejects (``name='value'``)."""
    out = []
    for row in records[list(integration.sync_key)].itertuples(index=False):
        out.append(
            next(
                (
                    f"{k}={plain(v)!r}"
                    for k, v in zip(integration.sync_key, row, strict=True)
                    if not is_empty(v)
                ),
                "",
            )
        )
    return out


def silent_failures(failed: int, messages: list[str], own_reasons: set[str], rejects_sent: int) -> int:
    """Failures Oomnitza counted without a message about them: its failed count, less the rejects we
    sent (Oomnitza fails each, with or without echoing our reason), less its other failure messages."""
    others = [m for m in messages if not any(reason in m for reason in own_reasons)]
    return max(failed - rejects_sent - len(others), 0)


def outcome_rows(
    integration: Integration,
    records: pd.DataFrame,
    outcome: Outcome,
    own_reasons: set[str],
    rejects_sent: int = 0,
    already_named: int = 0,
) -> list[dict[str, str]]:
    """Rows for what Oomnitza reported failed, skipped or fatal, and for failures it counted but did
    not describe (less ``already_named``: those the load pinned to their records)."""
    update_only = integration.preference is Preference.UPDATE_ONLY
    by_key = {
        str(plain(value)): record
        for name in integration.sync_key
        for value, record in zip(records[name], records.to_dict("records"), strict=True)
        if plain(value) is not None
    }
    rows = []
    for stage, words in (("failed", FAILED), ("skipped", SKIPPED)):
        for message in outcome.messages.get(stage, []):
            if stage == "failed" and any(reason in message for reason in own_reasons):
                continue  # our own rejects, echoed back by Oomnitza: already listed
            reason = message
            if stage == "skipped" and update_only:
                reason = f"not in Oomnitza, so not created (the preference is update only): {message}"
            record = next((by_key[t] for t in named_in(message) if t in by_key), None)
            rows.append(_row(words, record, reason))
    rows += [_row(FATAL, None, message) for message in outcome.messages.get("Fatal Error", [])]
    failed = int(outcome.counts.get("failed", 0))
    silent = (
        silent_failures(failed, outcome.messages.get("failed", []), own_reasons, rejects_sent) - already_named
    )
    if silent > 0:
        rows += [
            _row(
                FAILED_SILENTLY,
                None,
                f"Oomnitza counted {silent} failed record(s) without saying which or why; see the run in "
                "Oomnitza's connector logs",
            )
            for _ in range(silent)
        ]
    return rows


def missing_rows(integration: Integration, missing: MissingResult | None) -> list[dict[str, str]]:
    """Rows for the records flagged as gone from Kandji, cleared as back, or not flagged (and why)."""
    if missing is None or integration.when_missing is None:
        return []
    option = integration.when_missing

    def row(stage: str, entry: MissingEntry, reason: str) -> dict[str, str]:
        return {
            "stage": stage,
            "sync_key": entry.sync_key,
            "kandji_id": entry.kandji_id,
            "name": "",
            "reason": reason,
        }

    gone = f"not seen in Kandji for over {days_words(missing.after_days)} (last seen {{}}); "
    rows = [
        row(
            WOULD_FLAG if missing.dry_run else FLAGGED,
            e,
            gone.format(e.last_seen) + f"set {assignments_words(option.set)}",
        )
        for e in missing.flagged
    ]
    rows += [
        row(
            WOULD_CLEAR if missing.dry_run else BACK,
            e,
            f"flagged before and listed by Kandji again; set {assignments_words(option.clear_when_seen)}",
        )
        for e in missing.cleared
    ]
    rows += [row(NOT_FLAGGED, e, e.reason) for e in missing.not_flagged]
    rows += [row(HELD_BACK, e, gone.format(e.last_seen) + e.reason) for e in missing.held_back]
    return rows


def error_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ERROR_LOG_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(row.get(k)) for k in ERROR_LOG_COLUMNS})
    return buffer.getvalue()


# -- the summary ----------------------------------------------------------------------------------------
def summarise(
    integration: Integration,
    *,
    extracted: ExtractStats | None,
    loaded: LoadResult | None,
    rows: list[dict[str, str]],
    warnings: list[str],
    missing: MissingResult | None = None,
    started: float,
    error_log: str | None,
    integration_user: str | None = None,
) -> RunSummary:
    """The run summary: what Kandji held, what was sent, what Oomnitza made of it, what was not loaded."""
    counts = loaded.outcome.counts if loaded is not None and loaded.outcome is not None else {}
    stages: dict[str, int] = {}
    for row in rows:
        stages[row["stage"]] = stages.get(row["stage"], 0) + 1
    failures = sum(n for stage, n in stages.items() if stage in FAILURE_STAGES)
    software = extracted.software if extracted is not None else None
    delta = loaded.delta if loaded is not None else None
    return RunSummary(
        integration=integration.name,
        type=integration.type,
        integration_user=integration_user,
        dry_run=loaded.dry_run if loaded else False,
        portion=loaded.portion if loaded else None,
        read_at=extracted.read_at if extracted else None,
        kandji_records=extracted.count if extracted else None,
        records_sent=loaded.sent if loaded else 0,
        would_send=loaded.would_send if loaded else None,
        # A dry run's first records as they would be sent (a few mapped fields, app counts), and the
        # file with every payload: the Integrations page shows both.
        preview=loaded.sample if loaded and loaded.dry_run else None,
        dry_run_payloads=loaded.payloads if loaded and loaded.dry_run else None,
        rejected_before_load=stages.get(REJECTED, 0),
        added=counts.get("added", 0),
        updated=counts.get("updated", 0),
        unchanged=counts.get("unchanged", 0),
        skipped=counts.get("skipped", 0),
        failed=counts.get("failed", 0),
        unconfirmed=stages.get(UNCONFIRMED, 0),
        never_sent=stages.get(UNSENT, 0),
        refused=stages.get(REFUSED, 0),
        failed_without_message=stages.get(FAILED_SILENTLY, 0),
        loaded_without_software=stages.get(WITHOUT_SOFTWARE, 0),
        flagged_as_missing=stages.get(FLAGGED, 0),
        would_flag_as_missing=stages.get(WOULD_FLAG, 0),
        back_in_kandji=stages.get(BACK, 0),
        not_flagged_as_missing=stages.get(NOT_FLAGGED, 0),
        held_back_by_safeguard=stages.get(HELD_BACK, 0),
        when_missing=_missing_status(integration, missing),
        safeguard=missing.safeguard if missing else None,
        safeguard_confirmed_by=missing.confirmed_by if missing else None,
        delta=delta.mode if delta else ("off" if not integration.delta.enabled else "did not run"),
        records_seen=delta.seen if delta else None,
        records_changed=delta.changed if delta else None,
        skipped_unchanged=delta.skipped_unchanged if delta else 0,
        app_rows_sent=delta.app_rows_sent if delta else None,
        next_full_sync=delta.next_full_sync if delta else None,
        oomnitza_status=loaded.outcome.status if loaded and loaded.outcome else None,
        software_route=software.route if software else None,
        software_rows=software.software_rows if software else 0,
        calls=Calls(
            kandji=extracted.calls if extracted else 0,
            oomnitza=(loaded.calls if loaded else 0) + (missing.calls if missing else 0),
            oomnitza_when_missing=missing.calls if missing else None,
        ),
        retries=Retries(
            kandji=extracted.retries if extracted else 0,
            oomnitza=loaded.retries if loaded else 0,
        ),
        duration_seconds=round(time.time() - started, 1),
        not_loaded=failures,
        failures=failures,
        warnings=warnings,
        error_log=error_log,
        error_log_rows=len(rows),
    ).redacted()


def _missing_status(integration: Integration, missing: MissingResult | None) -> str:
    """when_missing in words: off, what this run did, or why it did nothing."""
    if integration.when_missing is None:
        return "off"
    if missing is None:
        return "did not run"
    if missing.status.startswith("skipped"):
        return missing.status
    if missing.safeguard is not None:
        return f"{missing.status}{' (dry run)' if missing.dry_run else ''}: {missing.safeguard}"
    confirmed = (
        f" (a safeguard's question confirmed by {missing.confirmed_by})" if missing.confirmed_by else ""
    )
    return (
        f"{missing.status}: cutoff {missing.cutoff}, {len(missing.flagged)} flagged, "
        f"{len(missing.cleared)} back in Kandji, {missing.already_flagged} already flagged{confirmed}"
    )


# -- the report -----------------------------------------------------------------------------------------
@dataclass
class Report:
    """What a run's report found: the summary, the error log's rows, and why the run fails (or None):
    ``failure`` in words, raised as ``failure_type`` (whether Airflow retries it is the type's)."""

    summary: RunSummary
    rows: list[dict[str, str]]
    warnings: list[str]
    failure: str | None = None
    failure_type: type[Exception] | None = None


def build_report(
    integration: Integration,
    *,
    checked: FieldCheck | None,
    extracted: ExtractStats | None,
    index: pd.DataFrame | None,
    loaded: LoadResult | None,
    missing: MissingResult | None,
    started: float,
    write_error_log: Any,
    integration_user: str | None = None,
) -> Report:
    """Account for every record whatever happened upstream, write the error log (``write_error_log(text)``
    returns where), and say whether the run fails: records failed beyond ``load.max_failed_records``, or
    a step did not finish.

    :param checked: the field check's result (None when it failed)
    :param extracted: the extract's stats (None when it failed)
    :param index: the transform's report index (None when it did not finish)
    :param loaded: the load's result (None when the load did not run)
    :param missing: the result of flagging records gone from Kandji (None when it did not run)
    """
    incomplete = _incomplete(checked, extracted, index, loaded) or _flagging_incomplete(integration, missing)
    rows = error_rows(
        integration,
        index,
        loaded,
        software_unread=extracted.software.unread if extracted and extracted.software else None,
        not_loaded_because=incomplete,
    ) + missing_rows(integration, missing)
    location = write_error_log(error_csv(rows))
    warnings = [
        *(checked.warnings if checked is not None else []),
        *(extracted.software.fallbacks if extracted and extracted.software else []),
        *_missing_warnings(missing),
    ]
    if loaded and loaded.outcome_error:
        warnings.append(
            f"Oomnitza's outcome of run {loaded.portion} could not be read, so the {loaded.sent} "
            f"record(s) sent are unconfirmed ({loaded.outcome_error})"
        )
    summary = summarise(
        integration,
        extracted=extracted,
        loaded=loaded,
        rows=rows,
        warnings=warnings,
        started=started,
        error_log=location,
        missing=missing,
        integration_user=integration_user,
    )
    limit = integration.load.max_failed_records
    if incomplete:
        failure = f"{incomplete}. {summary.failures} record(s) not loaded; what happened to each: {location}"
        return _failed(summary, rows, warnings, failure, RunIncomplete)
    if missing is not None and missing.safeguard_kind == MAX_FLAGGED and not missing.dry_run:
        failure = f"{missing.safeguard} The load's results stand; the records held back: {location}"
        return _failed(summary, rows, warnings, failure, SafeguardStopped)
    if not summary.dry_run and summary.failures > limit:
        failure = (
            f"{summary.failures} record(s) failed to load (allowed: {limit}); everything else was loaded. "
            f"Reasons per record: {location}"
        )
        return _failed(summary, rows, warnings, failure, TooManyFailures)
    return Report(summary, rows, warnings)


def _failed(
    summary: RunSummary, rows: list[dict[str, str]], warnings: list[str], failure: str, kind: type[Exception]
) -> Report:
    return Report(summary.model_copy(update={"failure": failure}), rows, warnings, failure, kind)


def _incomplete(
    checked: FieldCheck | None,
    extracted: ExtractStats | None,
    index: Any,
    loaded: LoadResult | None,
) -> str | None:
    """Why the run did not get through its load, in words, or None when it did."""
    if extracted is None:
        return "Kandji was not read: the extract did not finish (see its log); nothing was sent"
    if index is None:
        return "The transform did not finish (see its log); nothing was sent"
    if loaded is None:
        if checked is None:
            return "The Oomnitza field check stopped the run before loading (see its log); nothing was sent"
        return "The load did not run (see its log); nothing was sent"
    if loaded.failure:
        return f"The load stopped: {shorten(loaded.failure, 300)}"
    return None


def _flagging_incomplete(integration: Integration, missing: MissingResult | None) -> str | None:
    if integration.when_missing is not None and missing is None:
        return "Flagging records gone from Kandji did not finish (see its log); everything else was loaded"
    return None


def _missing_warnings(missing: MissingResult | None) -> list[str]:
    if missing is None:
        return []
    warnings = list(missing.warnings)
    if missing.status.startswith("skipped"):
        warnings.append(f"when_missing: nothing flagged as missing, {missing.status}")
    if missing.safeguard is not None:
        warnings.append(f"when_missing: {missing.safeguard}")
    if missing.confirmed_by is not None:
        warnings.append(
            f"when_missing: a safeguard stopped the flagging and {missing.confirmed_by} confirmed it under Required "
            "Actions (Airflow's record of the answer)"
        )
    return warnings


def log_report(integration: Integration, report: Report, loaded: LoadResult | None, log: Any) -> None:
    """The summary, its warnings and where the error log is, in the report task's log."""
    print("::group::Run summary")
    for key, value in report.summary.to_xcom().items():
        if value is None or value == [] or key in ("preview", "warnings"):  # warnings: logged below
            continue
        if isinstance(value, dict):  # e.g. calls: kandji 24, oomnitza 5
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        log.info("%-24s %s", key, value)
    print("::endgroup::")
    for warning in report.warnings:
        log.warning("%s", warning)
    log.info(
        "Error log (%d record(s) listed, %d failure(s)): %s",
        len(report.rows),
        report.summary.failures,
        report.summary.error_log,
    )
    if loaded is not None and loaded.dry_run:
        log.info(
            "Dry run: nothing was sent. %d record(s) would be sent (every payload: %s); the first ones:",
            loaded.would_send or 0,
            loaded.payloads,
        )
        for number, record in enumerate(loaded.sample, 1):
            log.info("  %d. %s", number, "; ".join(f"{field}: {value}" for field, value in record.items()))
    skipped = sum(1 for r in report.rows if r["stage"].startswith("skipped"))
    if skipped:
        log.info(
            "%d record(s) skipped by the preference (%s): listed in the error log, not counted as failures.",
            skipped,
            integration.preference.value,
        )
