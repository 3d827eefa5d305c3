"""The accounting rule: every Kandji record ends up loaded into Oomnitza, or in the run's error log with
what happened to it and why: rejected before loading, refused or failed or skipped by Oomnitza, sent but
unconfirmed, or never sent. The stages, which of them are failures, and the error log's rows, here only
(the load's pinpointing of unaccounted records and the report both read them); unit-tested edge case by
edge case.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import pandas as pd

from kandji_oomnitza.common.kandji_values import is_empty
from kandji_oomnitza.common.redaction import redact
from kandji_oomnitza.hooks.oomnitza import REFUSED, UNCONFIRMED, UNSENT
from kandji_oomnitza.hooks.oomnitza_protocol import Preference, named_in
from kandji_oomnitza.integrations.config import Integration, assignments_words
from kandji_oomnitza.integrations.handover import LoadResult, MissingEntry, MissingResult, Outcome
from kandji_oomnitza.integrations.mapping import ID, LABEL, plain
from kandji_oomnitza.settings_files import days_words

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
