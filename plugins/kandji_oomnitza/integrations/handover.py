"""What an integration run's tasks hand each other through XCom, one typed definition each, used by the
task that writes it (``to_xcom``) and every task that reads it (``from_xcom``):

    extract ──ExtractStats──► transform, load, flag_missing, report
    load ─────LoadResult────► report            (a dry run's result is a LoadResult too: dry_run=True)
    flag_missing ─MissingResult─► report

XCom holds their JSON; text made from an API's answer is redacted before it gets there.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from kandji_oomnitza.common.redaction import redact_value


class Handover(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def to_xcom(self) -> dict[str, Any]:
        return redact_value(self.model_dump(mode="json"))

    @classmethod
    def from_xcom(cls, value: Any) -> Self | None:
        """The hand-over, or None when the writing task did not finish (it left nothing)."""
        return cls.model_validate(value) if isinstance(value, dict) else None


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

    kind: str  # "records" or "rejects"
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


class MissingResult(Handover):
    status: str
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
