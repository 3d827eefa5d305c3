"""Exactly once per entry into a workflow's condition: the bookkeeping, as pure functions.

The state lives in Airflow's metadata database, in the asset state store of the workflow's asset
(key ``state``), written by the trigger in the triggerer; the workflow DAG writes ``claimed:<entry>``
there when a run takes an entry on. One entry is one record starting to match: ``<record id>#<n>``,
where ``n`` counts that record's entries. The state is written **before** the entry's event is handed
to Airflow, with the entry marked pending; a pending entry that no run has claimed after
``reemit_after`` seconds (the event was lost in a crash) is sent again under the same key, and the DAG
acts only on the earliest event of each key. So a triggerer or scheduler restart, or two triggerers
overlapping, can repeat an event but never an action.
"""

from __future__ import annotations

import copy
from typing import Any

STATE_KEY = "state"
LAST_POLL_KEY = "last_poll"
CLAIM_PREFIX = "claimed:"
SENT_PREFIX = "sent:"  # written just before a workflow's action goes to Kandji; never removed
LEAVE_AFTER = 2  # successful polls in a row without the record before it counts as having left


def entry_key(record_id: str, entry: int) -> str:
    return f"{record_id}#{entry}"


def empty_state() -> dict[str, Any]:
    return {"baseline": False, "records": {}, "pending": {}}


def advance(
    state: dict[str, Any] | None,
    matching: dict[str, dict[str, Any]],
    *,
    now: float,
    claimed: set[str],
    reemit_after: float,
    conditions: str = "",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The next state and the events to send, given the records matching now (id → the payload an
    event for it carries).

    - The first poll of a workflow, and the first after its conditions changed (``conditions`` is their
      fingerprint), records who already matches and starts nothing: enabling "Lost → lock" must not lock
      every device reported lost last year, nor widening it to "Lost or Stolen" every stolen one.
    - A record starts one entry when it matches and did not before; it leaves only after it was missing
      from ``LEAVE_AFTER`` successful polls in a row (one short or shifted read must not turn every
      matching record into a new entry at the next poll). Entering again starts a new entry.
    - Entries stay pending until a run claims them; unclaimed ones are sent again after ``reemit_after``.
    """
    state = copy.deepcopy(state) if state else empty_state()
    records: dict[str, dict[str, Any]] = state.setdefault("records", {})
    pending: dict[str, dict[str, Any]] = state.setdefault("pending", {})
    for key in claimed:
        pending.pop(key, None)
    if not state.get("baseline") or state.get("conditions", "") != conditions:
        return _baseline(state, matching, now, conditions), []
    events = []
    for record_id, payload in matching.items():
        known = records.get(record_id)
        if known and known["inside"]:
            known["missing"] = 0
            continue
        entry = (known["entry"] if known else 0) + 1
        records[record_id] = {"entry": entry, "inside": True, "missing": 0}
        key = entry_key(record_id, entry)
        event = {**payload, "record_id": record_id, "entry": entry, "key": key, "sent": 1}
        pending[key] = {"event": event, "at": now}
        events.append(event)
    for record_id, known in records.items():
        if known["inside"] and record_id not in matching:
            known["missing"] = known.get("missing", 0) + 1
            known["inside"] = known["missing"] < LEAVE_AFTER
    for waiting in pending.values():
        if now - waiting["at"] >= reemit_after and waiting["event"] not in events:
            waiting["at"] = now
            waiting["event"] = {**waiting["event"], "sent": waiting["event"].get("sent", 1) + 1}
            events.append(waiting["event"])
    return state, events


def _baseline(state: dict[str, Any], matching: dict[str, Any], now: float, conditions: str) -> dict[str, Any]:
    """Who matches now counts as already inside; entry numbers carry on (keys are never reused)."""
    state.update(baseline=True, baseline_at=now, conditions=conditions)
    records = state["records"]
    for known in records.values():
        known.update(inside=False, missing=LEAVE_AFTER)
    for record_id in matching:
        records[record_id] = {
            "entry": records.get(record_id, {}).get("entry", 0),
            "inside": True,
            "missing": 0,
        }
    return state


def first_sent_before(key: str, own_time: Any, events_of_asset: list[tuple[Any, str | None]]) -> Any | None:
    """When ``key`` was first sent, if before ``own_time`` (the run holding that earlier event acts, not
    this one); None when this run's event is the first. ``events_of_asset``: (time, key) pairs."""
    earlier = [at for at, event_key in events_of_asset if event_key == key and at < own_time]
    return min(earlier) if earlier else None
