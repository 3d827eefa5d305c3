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
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The next state and the events to send, given the records matching now (id → the payload an
    event for it carries).

    - The first poll of a workflow records who already matches and starts nothing: enabling a workflow
      must not lock every device that was reported lost last year.
    - A record starts one entry when it matches and did not at the previous poll; it leaves when it no
      longer matches. Entering again starts a new entry.
    - Entries stay pending until a run claims them; unclaimed ones are sent again after ``reemit_after``.
    """
    state = copy.deepcopy(state) if state else empty_state()
    records: dict[str, dict[str, Any]] = state.setdefault("records", {})
    pending: dict[str, dict[str, Any]] = state.setdefault("pending", {})
    for key in claimed:
        pending.pop(key, None)
    if not state.get("baseline"):
        state["baseline"] = True
        state["baseline_at"] = now
        for record_id in matching:
            records[record_id] = {"entry": 0, "inside": True}
        return state, []
    events = []
    for record_id, payload in matching.items():
        known = records.get(record_id)
        if known and known["inside"]:
            continue
        entry = (known["entry"] if known else 0) + 1
        records[record_id] = {"entry": entry, "inside": True}
        key = entry_key(record_id, entry)
        event = {**payload, "record_id": record_id, "entry": entry, "key": key, "sent": 1}
        pending[key] = {"event": event, "at": now}
        events.append(event)
    for record_id, known in records.items():
        if known["inside"] and record_id not in matching:
            known["inside"] = False
    for waiting in pending.values():
        if now - waiting["at"] >= reemit_after and waiting["event"] not in events:
            waiting["at"] = now
            waiting["event"] = {**waiting["event"], "sent": waiting["event"].get("sent", 1) + 1}
            events.append(waiting["event"])
    return state, events


def first_sent_before(key: str, own_time: Any, events_of_asset: list[tuple[Any, str | None]]) -> Any | None:
    """When ``key`` was first sent, if before ``own_time`` (the run holding that earlier event acts, not
    this one); None when this run's event is the first. ``events_of_asset``: (time, key) pairs."""
    earlier = [at for at, event_key in events_of_asset if event_key == key and at < own_time]
    return min(earlier) if earlier else None
