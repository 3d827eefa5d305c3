"""Delta loads: Oomnitza hears only about records that changed since it last confirmed them.

Each record's payload (its mapped fields with its ``APPLICATIONS`` or ``SAAS`` list, without Connector
Sync Time) gets a stable fingerprint. The store keeps, per Kandji id, the fingerprint Oomnitza last
**confirmed** and when Kandji last listed the record. It lives in object storage beside the error logs
(``<reports path>/<dag_id>/delta/fingerprints.json.gz``): it survives restarts, works on every executor
and is written only after Oomnitza's run log was read, so a crash between sending and confirming leaves
the old store, and the next run sends those records again.

A full send happens when there is no readable store, when the integration file's settings that shape
a payload changed (or the fingerprint format), when the last full sync is older than
``delta.full_sync_every``, or when the run's conf says ``{"full_sync": true}``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kandji_oomnitza.common.kandji_values import CLOCK_SKEW, TIMESTAMP_FORMAT
from kandji_oomnitza.common.redaction import shorten
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.settings_files import duration_words

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the fingerprint changes meaning: every integration then does a full sync
STORE_NAME = "fingerprints.json.gz"


def fingerprint(payload: dict[str, Any], sync_time_field: str | None) -> str:
    """A stable digest of what Oomnitza would store from this payload (lists in a stable order)."""
    content = {k: v for k, v in payload.items() if k != sync_time_field}
    for key in ("APPLICATIONS", "SAAS"):
        if isinstance(content.get(key), list):
            content[key] = sorted(json.dumps(item, sort_keys=True, default=str) for item in content[key])
    text = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def settings_hash(integration: Integration) -> str:
    """What in the file shapes a payload or names a record; a change forces a full sync."""
    shaping = integration.model_dump(
        mode="json", include={"type", "preference", "sync_key", "mappings", "software", "users"}
    )
    return hashlib.sha256(json.dumps([FORMAT, shaping], sort_keys=True).encode()).hexdigest()[:20]


def store_path(root: str, dag_id: str):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / "delta" / STORE_NAME


def read_store(path, now: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the store, or None) and why it could not be used, if it exists but cannot be read or is not
    plausible at ``now`` (this run's read time): whatever is wrong with it means a full sync, never a
    failed run, and never delta mode for ever."""
    try:
        if not path.exists():
            return None, None
        with path.open("rb") as raw:
            store = json.loads(gzip.decompress(raw.read()))
    except (OSError, ValueError, EOFError) as exc:
        return None, f"the fingerprint store could not be read ({shorten(exc, 200)})"
    problem = store_problem(store, now)
    return (None, f"the fingerprint store is not usable: {problem}") if problem else (store, None)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def store_problem(store: Any, now: str) -> str | None:
    """What makes a store unusable: a shape other than the one ``new_store`` writes, or times that
    cannot be read or lie in the future (beyond a minute of clock skew)."""
    if not isinstance(store, dict) or not isinstance(store.get("records"), dict):
        return "it has an unexpected shape"
    read = _time(now)
    latest = read + CLOCK_SKEW if read is not None else None
    last_full = store.get("last_full_sync")
    if last_full is not None:
        when = _time(last_full)
        if when is None:
            return f"last_full_sync {shorten(repr(last_full), 40)} is not a time like 2026-11-28T10:00:00Z"
        if latest and when > latest:
            return f"last_full_sync {last_full} is in the future"
    for key, entry in store["records"].items():
        seen = _time(entry[1]) if isinstance(entry, list) and len(entry) == 2 else None
        if seen is None or not (entry[0] is None or isinstance(entry[0], str)):
            return f"the entry of {shorten(key, 40)} is not [fingerprint, time seen]"
        if latest and seen > latest:
            return f"{shorten(key, 40)} was seen in the future ({entry[1]})"
    return None


def write_store(path, store: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress(json.dumps(store, separators=(",", ":")).encode())
    with path.open("wb") as out:  # one put on object storage; a torn local file reads as unreadable
        out.write(data)


def full_sync_reason(
    integration: Integration, store: dict[str, Any] | None, problem: str | None, read_at: str, forced: bool
) -> str | None:
    """Why this run sends everything, or None for a delta run."""
    if forced:
        return "full_sync was asked for in the run's conf"
    if store is None:
        return problem or "no fingerprints yet (the first run with delta on)"
    if store.get("settings") != settings_hash(integration):
        return "the integration file's mappings, sync key, preference or options changed (or the fingerprint format)"
    last = store.get("last_full_sync")
    due = next_full_sync(integration, last)
    if due is None or due <= read_at:
        return f"the last full sync ({last or 'never'}) is older than delta.full_sync_every ({duration_words(integration.delta.full_sync_every)})"
    return None


def next_full_sync(integration: Integration, last_full_sync: str | None) -> str | None:
    if not last_full_sync:
        return None
    last = datetime.strptime(last_full_sync, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    return (last + integration.delta.full_sync_every).strftime(TIMESTAMP_FORMAT)


@dataclass
class DeltaPlan:
    """Which records of a run go to Oomnitza, and what the store will say afterwards.

    ``select`` passes payloads through, keeping only changed ones (all of them on a full sync) and
    noting each record's fingerprint; ``sent_positions`` are the positions (in the records frame) of
    what it let through, in order, so the run's positions map back to records."""

    integration: Integration
    old: dict[str, Any] | None
    full_reason: str | None
    read_at: str
    entries: list[tuple[str, str]] = field(default_factory=list)  # (Kandji id, fingerprint) per record
    sent_positions: list[int] = field(default_factory=list)
    seen: int = 0
    app_rows_sent: int = 0
    store: dict[str, Any] | None = None  # what to write once the load is over (None: write nothing)

    @property
    def full(self) -> bool:
        return self.full_reason is not None

    def previous(self, kandji_id: str) -> str | None:
        entry = ((self.old or {}).get("records") or {}).get(kandji_id)
        return entry[0] if isinstance(entry, list) and entry else None

    def select(
        self, payloads: Iterable[dict[str, Any]], kandji_ids: Iterable[Any]
    ) -> Iterator[dict[str, Any]]:
        sync_time_field = self.integration.sync_time_field
        for position, (payload, kandji_id) in enumerate(zip(payloads, kandji_ids, strict=True)):
            self.seen += 1
            digest = fingerprint(payload, sync_time_field)
            key = str(kandji_id)
            self.entries.append((key, digest))
            if self.full or self.previous(key) != digest:
                self.sent_positions.append(position)
                self.app_rows_sent += len(payload.get("APPLICATIONS") or [])
                yield payload

    def new_store(self, confirmed: set[int], listed_ids: Iterable[str], outcome_read: bool) -> dict[str, Any]:
        """The store after this run. A sent record keeps its new fingerprint only when Oomnitza confirmed
        it (``confirmed``: positions in the records frame), else it has none and goes again next run; an
        unchanged record keeps the one confirmed before. Every listed record is seen now; records not
        listed (gone from Kandji) keep when they were last seen."""
        records = dict((self.old or {}).get("records") or {})
        sent = set(self.sent_positions)
        for position, (key, digest) in enumerate(self.entries):
            kept = digest if position not in sent or position in confirmed else None
            records[key] = [kept, self.read_at]
        known = {key for key, _ in self.entries}
        for key in listed_ids:  # rejected before loading: seen, never confirmed
            if key not in known:
                records[key] = [None, self.read_at]
        last_full = (self.old or {}).get("last_full_sync")
        return {
            "format": FORMAT,
            "settings": settings_hash(self.integration),
            "last_full_sync": self.read_at if self.full and outcome_read else last_full,
            "records": records,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "mode": f"full: {self.full_reason}" if self.full else "delta",
            "seen": self.seen,
            "changed": len(self.sent_positions) if not self.full else None,
            "sent": len(self.sent_positions),
            "skipped_unchanged": self.seen - len(self.sent_positions),
            "app_rows_sent": self.app_rows_sent,
            "next_full_sync": next_full_sync(
                self.integration, self.read_at if self.full else (self.old or {}).get("last_full_sync")
            ),
        }


def last_seen_after(store: dict[str, Any] | None, cutoff: str) -> set[str]:
    """Kandji ids the store saw after ``cutoff`` (for when_missing under delta loads: a record not sent
    because it did not change was still seen)."""
    return {
        key
        for key, entry in ((store or {}).get("records") or {}).items()
        if isinstance(entry, list) and len(entry) > 1 and isinstance(entry[1], str) and entry[1] > cutoff
    }
