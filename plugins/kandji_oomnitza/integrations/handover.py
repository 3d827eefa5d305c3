"""What an integration run's tasks hand each other through XCom, one typed definition each, used by the
task that writes it (``to_xcom``) and every task that reads it (``from_xcom``):

    extract ──ExtractStats──► transform, load, flag_missing, report
    load ─────LoadResult────► report            (a dry run's result is a LoadResult too: dry_run=True)
    flag_missing ─MissingResult─► report
    check_oomnitza_fields ─FieldCheck─► report
    report ───RunSummary────► the Integrations page, the notifications, whoever reads the run

XCom holds their JSON; text made from an API's answer is redacted before it gets there (``to_xcom``).
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from kandji_oomnitza.common.handover import Handover


# -- extract --------------------------------------------------------------------------------------------
class Listing(Handover):
    """Whether this run's Kandji listing can be trusted to say what is gone (see missing.py)."""

    complete: bool = True
    listed: int = 0
    total: int | None = None  # Kandji's own count (X-Total-Count), when it gave one
    why: str | None = None


class SoftwareStats(Handover):
    route: str
    devices_with_software: int = 0
    software_rows: int = 0
    prism_rows: int = 0
    per_device_calls: int = 0
    fallbacks: list[str] = []
    unread: dict[str, str] = {}  # device id -> why its apps could not be read


class ExtractStats(Handover):
    read_at: str  # when Kandji was read: every record's Connector Sync Time
    calls: int = 0
    retries: int = 0
    count: int = 0
    software: SoftwareStats | None = None
    listing: Listing = Listing()


# -- load -------------------------------------------------------------------------------------------------
class BatchProblem(Handover):
    """A batch that did not arrive cleanly: which records (positions in the run), and how it ended."""

    kind: Literal["records", "rejects"]
    positions: list[int]
    state: str
    detail: str = ""


class Outcome(Handover):
    """Oomnitza's run log of the load (only the messages the error log needs)."""

    status: str = ""
    counts: dict[str, int] = {}
    messages: dict[str, list[str]] = {}


class DeltaSummary(Handover):
    mode: str
    seen: int = 0
    changed: int | None = None
    sent: int = 0
    skipped_unchanged: int = 0
    app_rows_sent: int = 0
    next_full_sync: str | None = None
    sent_positions: list[int] | None = None  # None: a full sync, the run's positions are the records'


class LoadResult(Handover):
    """What became of the load, for the report: counts, Oomnitza's outcome, and every batch that did not
    arrive cleanly; or, with ``dry_run``, what would have been sent."""

    dry_run: bool = False
    portion: str | None = None
    records: int = 0
    rejects: int = 0
    added_to_run: dict[str, int] = {}
    sent: int = 0
    rejected_sent: int = 0
    batches: int = 0
    problems: list[BatchProblem] = []
    failure: str | None = None
    finalize_error: str | None = None
    outcome_error: str | None = None
    outcome: Outcome | None = None
    silent_failures_named: int = 0
    delta: DeltaSummary | None = None
    calls: int = 0
    retries: int = 0
    # a dry run
    would_send: int | None = None
    sample: list[dict[str, Any]] = []
    payloads: str | None = None

    @property
    def sent_positions(self) -> list[int] | None:
        """The records frame's positions of what this run sent, when a delta load chose them."""
        return self.delta.sent_positions if self.delta is not None else None


# -- flag_missing -----------------------------------------------------------------------------------------
class MissingEntry(Handover):
    kandji_id: str = ""
    sync_key: str = ""
    keys: dict[str, Any] = {}
    last_seen: Any = None
    reason: str = ""


class MissingStatus(enum.StrEnum):
    """What flagging records gone from Kandji did (its words are the summary's)."""

    SKIPPED = "skipped"  # the listing cannot be trusted to say what is gone: ``why`` says why
    DRY_RUN = "dry run"
    NOTHING = "nothing to flag"
    STOPPED = "stopped by the safeguard"
    SENT = "sent"
    UNCONFIRMED = "sent, unconfirmed"


class MissingResult(Handover):
    status: MissingStatus
    why: str | None = None  # a skipped run: why nothing was considered
    after_days: float
    dry_run: bool = False
    safeguard: str | None = None  # the sentence of the safeguard that stopped the flagging (safeguard.py)
    safeguard_kind: str | None = None
    confirmed_by: str | None = None  # who confirmed what a safeguard stopped (Airflow's record of the answer)
    held_back: list[MissingEntry] = []  # what the max_flagged safeguard kept from being flagged
    flagged: list[MissingEntry] = []
    cleared: list[MissingEntry] = []
    not_flagged: list[MissingEntry] = []
    cutoff: str | None = None
    already_flagged: int = 0
    warnings: list[str] = []
    portion: str | None = None
    outcome: dict[str, int] | None = None
    calls: int = 0


# -- check_oomnitza_fields --------------------------------------------------------------------------------
class FieldCheck(Handover):
    """The field check's result: the Oomnitza fields the mapping writes that Oomnitza has, and what it
    warns about (fields it could not check)."""

    checked_fields: list[str] = []
    warnings: list[str] = []
    calls: int = 0


# -- report -----------------------------------------------------------------------------------------------
class Calls(Handover):
    kandji: int = 0
    oomnitza: int = 0
    oomnitza_when_missing: int | None = None  # of the Oomnitza calls, flagging's (None: it did not run)


class Retries(Handover):
    kandji: int = 0
    oomnitza: int = 0


class RunSummary(Handover):
    """The run summary: what Kandji held, what was sent, what Oomnitza made of it, what was not loaded.
    The report task's return value (XCom ``summary`` too when the run fails, with ``failure``); every field
    has a default, so a summary of an older version reads."""

    integration: str = ""
    type: str = ""
    integration_user: str | None = None  # the Oomnitza connection's login: who the integration acts as
    dry_run: bool = False
    portion: str | None = None  # Oomnitza's run id of the load
    read_at: str | None = None
    kandji_records: int | None = None
    records_sent: int = 0
    would_send: int | None = None  # a dry run: how many would be sent
    preview: list[dict[str, Any]] | None = None  # a dry run: its first records as they would be sent
    dry_run_payloads: str | None = None  # a dry run: where every payload it would have sent is
    rejected_before_load: int = 0
    # Oomnitza's outcome of the load (hooks/oomnitza.OUTCOMES)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    # the error log's stages, counted
    unconfirmed: int = 0
    never_sent: int = 0
    refused: int = 0
    failed_without_message: int = 0
    loaded_without_software: int = 0
    flagged_as_missing: int = 0
    would_flag_as_missing: int = 0
    back_in_kandji: int = 0
    not_flagged_as_missing: int = 0
    held_back_by_safeguard: int = 0
    when_missing: str = "off"  # what flagging did, in words
    safeguard: str | None = None  # a safeguard stopped the flagging: its sentence
    safeguard_confirmed_by: str | None = None  # who confirmed it (Airflow's record of the answer)
    delta: str = "off"  # "delta", "full: <why>", "off" or "did not run"
    records_seen: int | None = None
    records_changed: int | None = None
    skipped_unchanged: int = 0
    app_rows_sent: int | None = None
    next_full_sync: str | None = None
    oomnitza_status: str | None = None
    software_route: str | None = None
    software_rows: int = 0
    calls: Calls = Calls()
    retries: Retries = Retries()
    duration_seconds: float = 0.0
    not_loaded: int = 0
    failures: int = 0
    warnings: list[str] = []
    error_log: str | None = None
    error_log_rows: int | None = None  # None: a summary from before the count was kept
    failure: str | None = None  # why the run failed (set only when it did)

    @property
    def flagged(self) -> int:
        """Flagged as missing, or for a dry run how many would be."""
        return self.would_flag_as_missing if self.dry_run else self.flagged_as_missing

    def outcome_counts(self) -> dict[str, int]:
        """Oomnitza's outcome of the load, by its own names."""
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "failed": self.failed,
        }
