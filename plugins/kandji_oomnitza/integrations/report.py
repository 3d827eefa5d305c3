"""The run report: every Kandji record accounted for (``accounting.py``), the error log written
(``storage.py``), and the run summary. The report runs whatever happened upstream, and reads only what
each step handed over (``handover.py``; None where a step did not finish).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.exceptions import RunIncomplete, SafeguardStopped, TooManyFailures
from kandji_oomnitza.integrations.accounting import (
    BACK,
    FAILED_SILENTLY,
    FAILURE_STAGES,
    FLAGGED,
    HELD_BACK,
    NOT_FLAGGED,
    REFUSED,
    REJECTED,
    UNCONFIRMED,
    UNSENT,
    WITHOUT_SOFTWARE,
    WOULD_FLAG,
    error_csv,
    error_rows,
    missing_rows,
)
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.handover import (
    Calls,
    ExtractStats,
    FieldCheck,
    LoadResult,
    MissingResult,
    MissingStatus,
    Retries,
    RunSummary,
)
from kandji_oomnitza.integrations.safeguard import MAX_FLAGGED


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
    if missing.status is MissingStatus.SKIPPED:
        return f"skipped: {missing.why}"
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
    if missing.status is MissingStatus.SKIPPED:
        warnings.append(f"when_missing: nothing flagged as missing, skipped: {missing.why}")
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
