"""Exactly once per entry into a workflow's condition: the bookkeeping, as pure functions.

The state lives in Airflow's metadata database, in the asset state store of the workflow's asset
(key ``state``), written by the trigger in the triggerer; the workflow DAG writes ``claimed:<entry>``
there when a run takes an entry on. One entry is one record starting to match: ``<record id>#<n>``,
where ``n`` counts that record's entries. The state is written **before** the entry's event is handed
to Airflow, with the entry marked pending; a pending entry that no run has claimed after
``reemit_after`` seconds (the event was lost in a crash) is sent again under the same key, and the DAG
acts only on the earliest event of each key. So a triggerer or scheduler restart, or two triggerers
overlapping, can repeat an event but never an action.

Every entry carries a nonce the watcher drew when the entry began, kept in the state beside the entry:
an asset event whose entry does not carry the nonce the state holds for it was not produced by the
watcher (anyone allowed to post asset events can post one), and starts nothing.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterable
from typing import Any

STATE_KEY = "state"
LAST_POLL_KEY = "last_poll"
CLAIM_PREFIX = "claimed:"
SENT_PREFIX = "sent:"  # written just before a workflow's action goes to Kandji; never removed
LEAVE_AFTER = 2  # successful polls in a row without the record before it counts as having left
NONCES_KEPT = 20  # entries per record whose nonce the state remembers (a repeated event may be late)


def sealed_under(workflow: str, key: str) -> str:
    """What a value of a workflow's state store is sealed over (common/seal.py): the asset and the key."""
    return f"{workflow}/{key}"


def counters_only(untrusted: Any) -> dict[str, Any]:
    """Of a state that cannot be trusted (its seal is missing or wrong), only each record's entry counter,
    so keys are never reused (an old ``sent:`` mark would block a new entry under the same key); its
    nonces, pending entries and baseline are dropped, and the next poll takes a new baseline (starts
    nothing)."""
    if isinstance(untrusted, dict) and isinstance(untrusted.get("sealed"), dict):
        untrusted = untrusted["sealed"]
    records = (untrusted or {}).get("records") if isinstance(untrusted, dict) else None
    kept: dict[str, Any] = {}
    for record_id, known in (records or {}).items() if isinstance(records, dict) else ():
        number = known.get("entry") if isinstance(known, dict) else None
        if isinstance(record_id, str) and isinstance(number, int) and 0 <= number < 10**9:
            kept[record_id] = {"entry": number, "inside": False, "missing": LEAVE_AFTER}
    return {**empty_state(), "records": kept}


def entry_key(record_id: str, entry: int) -> str:
    return f"{record_id}#{entry}"


def empty_state() -> dict[str, Any]:
    return {"baseline": False, "records": {}, "pending": {}}


def new_nonce() -> str:
    return secrets.token_hex(16)


def advance(
    state: dict[str, Any] | None,
    matching: dict[str, dict[str, Any]],
    *,
    now: float,
    claimed: set[str],
    reemit_after: float,
    conditions: str = "",
    gone: set[str] | None = None,
    nonce: Callable[[], str] = new_nonce,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The next state and the entries to send (in one event), given the records matching now (id → the
    payload an entry for it carries).

    - The first poll of a workflow, and the first after its conditions changed (``conditions`` is their
      fingerprint), records who already matches and starts nothing: enabling "Lost → lock" must not lock
      every device reported lost last year, nor widening it to "Lost or Stolen" every stolen one.
    - A record starts one entry when it matches and did not before; it leaves only after it was missing
      from ``LEAVE_AFTER`` successful polls in a row, and only when it is confirmed gone (``gone``: read
      again by id, deleted or no longer matching; None counts every missing record): a short, shifted
      or empty read must not turn every matching record into a new entry. Entering again is a new entry.
    - Entries stay pending until a run claims them; unclaimed ones are sent again after ``reemit_after``.
    """
    state = copy.deepcopy(state) if state else empty_state()
    records: dict[str, dict[str, Any]] = state.setdefault("records", {})
    pending: dict[str, dict[str, Any]] = state.setdefault("pending", {})
    for key in claimed:
        pending.pop(key, None)
    if not state.get("baseline") or state.get("conditions", "") != conditions:
        return _baseline(state, matching, now, conditions), []
    entries = []
    for record_id, payload in matching.items():
        known = records.get(record_id)
        if known and known["inside"]:
            known["missing"] = 0
            continue
        entry = (known["entry"] if known else 0) + 1
        nonces = {**(known or {}).get("nonces", {}), str(entry): nonce()}
        records[record_id] = {
            "entry": entry,
            "inside": True,
            "missing": 0,
            "nonces": dict(list(nonces.items())[-NONCES_KEPT:]),
        }
        key = entry_key(record_id, entry)
        sent = {**payload, "record_id": record_id, "entry": entry, "key": key, "nonce": nonces[str(entry)]}
        pending[key] = {"event": {**sent, "sent": 1}, "at": now}
        entries.append(pending[key]["event"])
    for record_id, known in records.items():
        if known["inside"] and record_id not in matching:
            if gone is not None and record_id not in gone:
                known["missing"] = 0  # read again: it still matches (or could not be read): not gone
                continue
            known["missing"] = known.get("missing", 0) + 1
            known["inside"] = known["missing"] < LEAVE_AFTER
    for waiting in pending.values():
        if now - waiting["at"] >= reemit_after and waiting["event"] not in entries:
            waiting["at"] = now
            waiting["event"] = {**waiting["event"], "sent": waiting["event"].get("sent", 1) + 1}
            entries.append(waiting["event"])
    return state, entries


def _baseline(state: dict[str, Any], matching: dict[str, Any], now: float, conditions: str) -> dict[str, Any]:
    """Who matches now counts as already inside; entry numbers carry on (keys are never reused)."""
    state.update(baseline=True, baseline_at=now, conditions=conditions)
    records = state["records"]
    for known in records.values():
        known.update(inside=False, missing=LEAVE_AFTER)
    for record_id in matching:
        known = records.get(record_id, {})
        records[record_id] = {**known, "entry": known.get("entry", 0), "inside": True, "missing": 0}
    return state


def inside_but_missing(state: dict[str, Any] | None, matching: Iterable[str], conditions: str) -> list[str]:
    """Records the state counts as matching that this poll's read did not return (the ones whose leaving
    must be confirmed), in a stable order; none before a baseline under these conditions."""
    if not state or not state.get("baseline") or state.get("conditions", "") != conditions:
        return []
    seen = set(matching)
    return sorted(
        rid for rid, known in state.get("records", {}).items() if known.get("inside") and rid not in seen
    )


def entries_of(payload: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The entries an asset event's payload carries: one event per poll holds every entry it started
    (``entries``); events written before that held one entry each."""
    payload = payload or {}
    if isinstance(payload.get("entries"), list):
        return [e for e in payload["entries"] if isinstance(e, dict)]
    return [payload] if payload.get("key") else []


def authentic(state: dict[str, Any] | None, entry: dict[str, Any]) -> bool:
    """Whether the watcher produced this entry: its key names a record and entry the state holds, with
    the nonce the watcher drew for it. Anything else (a forged event, an invented key) starts nothing."""
    record_id, number, key = entry.get("record_id"), entry.get("entry"), entry.get("key")
    if not isinstance(record_id, str) or not isinstance(number, int) or key != entry_key(record_id, number):
        return False
    known = ((state or {}).get("records") or {}).get(record_id) or {}
    expected = (known.get("nonces") or {}).get(str(number))
    return (
        isinstance(expected, str)
        and bool(expected)
        and secrets.compare_digest(str(entry.get("nonce") or ""), expected)
    )


def first_sent_before(key: str, own_time: Any, events_of_asset: list[tuple[Any, str | None]]) -> Any | None:
    """When ``key`` was first sent, if before ``own_time`` (the run holding that earlier event acts, not
    this one); None when this run's event is the first. ``events_of_asset``: (time, key) pairs."""
    earlier = [at for at, event_key in events_of_asset if event_key == key and at < own_time]
    return min(earlier) if earlier else None
