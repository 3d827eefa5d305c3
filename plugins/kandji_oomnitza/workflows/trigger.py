"""The workflows' Begin block: an event trigger that polls Oomnitza in the triggerer.

One ``OomnitzaRecordsTrigger`` watches one workflow's asset (``AssetWatcher``). A poll in which records
start matching the workflow's conditions fires **one** event carrying all of them (``entries``):
Airflow turns it into one asset event, and the asset schedules one run of the workflow DAG for them
(several events in one scheduler loop could leave all but the first waiting for a re-send). Workflows
that watch the same fields of the same Oomnitza the same way (connection, object, interval, all/any),
whatever values they compare with, share one read per poll through the triggerer's shared-stream
support: the DAG factory gives each the group's reads (``config.shared_filters``); each applies its own
conditions to what comes back and keeps its own state (``state.py``).

A record that matched and is missing from a poll is read again by id before it counts as gone: an
empty or shortened answer (a hiccup, a permission change) is a warning, never a departure, so it can
never make every matching record "enter" again when the answers come back.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from collections.abc import AsyncIterator, Hashable
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from kandji_oomnitza.common.seal import seal, unseal
from kandji_oomnitza.workflows.state import (
    CLAIM_PREFIX,
    LAST_POLL_KEY,
    STATE_KEY,
    advance,
    counters_only,
    inside_but_missing,
    sealed_under,
)

ID_FIELD = "equipment_id"
PAGE_SIZE = 500
# The most records one poll reads: the triggerer also runs every other watcher and the deadline alerts, so
# a read that outgrows this (an Oomnitza that pages forever, or conditions matching a whole instance)
# stops as a failed poll (logged; nothing changes) instead of taking the triggerer's memory.
MAX_WATCHED_RECORDS = 200_000
CONFIRMATIONS_PER_POLL = 50  # records missing from one poll read again by id (the rest wait a poll)
CLASSPATH = "kandji_oomnitza.workflows.trigger.OomnitzaRecordsTrigger"


def read_records(
    conn_id: str, kind: str, filters: list[str | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The records the filters select (each read paged; an Oomnitza that refuses a filter with 400 is
    read in full instead), and warnings for the log. Blocking: run it in a thread."""
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    hook = OomnitzaHook(conn_id)
    warnings: list[str] = []
    records: list[dict[str, Any]] = []
    try:
        for expression in filters:
            read, refused = hook.read_filtered(
                kind, expression, page_size=PAGE_SIZE, max_records=MAX_WATCHED_RECORDS
            )
            records.extend(read)
            if refused:
                warnings.append(refused)
    finally:
        hook.close()
    return records, warnings


def read_by_id(conn_id: str, kind: str, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each record as Oomnitza holds it now (None: it answered 404, the record is gone); a record that
    could not be read is left out (not known to be gone). Blocking: run it in a thread."""
    from urllib.parse import quote

    from kandji_oomnitza.hooks.errors import ApiError
    from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

    hook = OomnitzaHook(conn_id)
    found: dict[str, dict[str, Any] | None] = {}
    try:
        for record_id in ids:
            try:
                record = hook.get_json(f"api/v3/{kind}/{quote(record_id, safe='')}")
            except ApiError as exc:
                if exc.status == 404:
                    found[record_id] = None
                continue
            if isinstance(record, dict):
                found[record_id] = record
    finally:
        hook.close()
    return found


def _write_number(state: dict[str, Any]) -> int:
    number = state.get("seq")
    return number if isinstance(number, int) and not isinstance(number, bool) else 0


class _MemoryStore:
    """Where a trigger keeps its state when it runs outside the triggerer (a unit test)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value

    async def adelete(self, key: str) -> None:
        self.values.pop(key, None)


class OomnitzaRecordsTrigger(BaseEventTrigger):
    """Fire once per record entering ``trigger`` (a workflow file's trigger section, as a dict)."""

    def __init__(
        self,
        *,
        workflow: str,
        trigger: dict[str, Any],
        serial_field: str,
        record_fields: list[str],
        reemit_after: float = 900.0,
        shared_filters: list[str | None] | None = None,
    ) -> None:
        """``shared_filters``: the reads of this trigger's read group (``config.shared_filters``), the same
        for every workflow watching the same fields the same way; None: this trigger's own filters."""
        super().__init__()
        from kandji_oomnitza.workflows.config import Trigger

        self.workflow = workflow
        self.trigger_spec = trigger
        self.serial_field = serial_field
        self.record_fields = record_fields
        self.reemit_after = reemit_after
        # The state this watcher wrote last (with its write number ``seq``), while this triggerer runs: a
        # value in the store that is not it (replaced, or an older one put back) is not used.
        self._written: dict[str, Any] | None = None
        self._rewrite = False
        self.spec = Trigger.model_validate(trigger)
        self.shared_filters = shared_filters if shared_filters is not None else self.spec.server_filters()
        self._memory = _MemoryStore()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "workflow": self.workflow,
                "trigger": self.trigger_spec,
                "serial_field": self.serial_field,
                "record_fields": self.record_fields,
                "reemit_after": self.reemit_after,
                "shared_filters": self.shared_filters,
            },
        )

    # -- the shared poll -------------------------------------------------------------------------
    def shared_stream_key(self) -> Hashable | None:
        """One poll loop per read: the workflows of one read group share it (each checks its own
        conditions on what it returns), so Oomnitza's reads per poll do not grow with them."""
        return (
            "oomnitza-records",
            self.spec.connection,
            self.spec.object,
            tuple(self.shared_filters),
            self.spec.poll_interval,
        )

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """One read per interval for every workflow in the group; a failed read is passed on as such
        (the subscribers log it and keep their state), never as "nothing matches"."""
        from kandji_oomnitza.common.redaction import shorten
        from kandji_oomnitza.workflows.config import Trigger

        spec = Trigger.model_validate(kwargs["trigger"])
        filters = kwargs.get("shared_filters")
        filters = filters if filters is not None else spec.server_filters()
        while True:
            started = time.time()
            try:
                records, warnings = await asyncio.to_thread(
                    read_records, spec.connection, spec.object, filters
                )
                yield {"ok": True, "records": records, "warnings": warnings, "at": started}
            except Exception as exc:
                yield {"ok": False, "error": shorten(exc, 500), "at": started}
            await asyncio.sleep(max(0.0, spec.poll_interval.total_seconds() - (time.time() - started)))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for snapshot in shared_stream:
            for event in await self._advance(snapshot):
                yield TriggerEvent(event)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self.filter_shared_stream(type(self).open_shared_stream(self.serialize()[1])):
            yield event

    # -- this workflow's state -------------------------------------------------------------------
    @property
    def conditions_fingerprint(self) -> str:
        """What the workflow matches on; a change re-baselines the state (see ``advance``)."""
        spec = {"object": self.spec.object, "match": str(self.spec.match), "serial": self.serial_field,
                "conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in self.spec.conditions]}  # fmt: skip
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def store(self) -> Any:
        return self.asset_state_store if self.asset_state_store is not None else self._memory

    def matching(self, records: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int]:
        """Records passing the conditions, by id, as event payloads; and how many had no id."""
        found: dict[str, dict[str, Any]] = {}
        without_id = 0
        for record in records:
            if not isinstance(record, dict) or not self.spec.holds(record):
                continue
            record_id = record.get(ID_FIELD)
            if not record_id:
                without_id += 1
                continue
            found[str(record_id)] = {
                "workflow": self.workflow,
                "serial_number": record.get(self.serial_field),
                "fields": {name: record.get(name) for name in self.record_fields},
            }
        return found, without_id

    async def _confirm_gone(self, missing: list[str], answered: int) -> set[str]:
        """Of the matching records this poll did not return, those Oomnitza confirms are gone (read again
        by id: deleted, or no longer matching). An empty answer when records matched is a warning, not
        their departure; so is a record that still matches when read by itself."""
        if not missing:
            return set()
        if answered == 0:
            self.log.warning(
                "Workflow %s: Oomnitza answered with no records although %d matched at the last poll; each is "
                "read again by id, and only one that no longer matches (or is gone) counts as leaving",
                self.workflow,
                len(missing),
            )
        checked = missing[:CONFIRMATIONS_PER_POLL]
        try:
            now = await asyncio.to_thread(read_by_id, self.spec.connection, self.spec.object, checked)
        except Exception as exc:
            self.log.warning(
                "Workflow %s: %d record(s) missing from this poll could not be read again (%s); none counts "
                "as gone yet",
                self.workflow,
                len(checked),
                exc,
            )
            return set()
        gone = {rid for rid, record in now.items() if record is None or not self.spec.holds(record)}
        if still := [rid for rid, record in now.items() if record is not None and rid not in gone]:
            self.log.warning(
                "Workflow %s: %d record(s) still match but were missing from Oomnitza's answer (%s); kept",
                self.workflow,
                len(still),
                ", ".join(still[:5]),
            )
        return gone

    async def _read_state(self) -> dict[str, Any] | None:
        """The state this watcher wrote last. One it did not write (no valid seal, common/seal.py), one that
        is not a state, or an older one of its own put back (a lower write number than its last write) is
        not used: while this triggerer runs, the watcher goes on from the state it wrote last (and writes it
        back); after a restart it keeps only the entry counters and takes a new baseline (starts nothing)."""
        stored = await self.store.aget(STATE_KEY)
        state, problem = unseal(sealed_under(self.workflow, STATE_KEY), stored)
        if problem is None and state is not None and not isinstance(state, dict):
            problem = "it is not a state (a JSON object)"
        last = _write_number(self._written) if self._written is not None else None
        if problem is None and state is not None and last is not None and _write_number(state) < last:
            problem = (
                f"it is an older state than the one this watcher wrote last (write {_write_number(state)}, not "
                f"{last}): an earlier value was put back"
            )
        self._rewrite = problem is not None
        if problem is None:
            return state
        if self._written is not None:
            self.log.error(
                "Workflow %s: its state in Airflow's asset state store is not the one this watcher wrote: %s. "
                "Someone allowed to edit assets may have written it through the REST API (see SECURITY.md). It is "
                "not used: the watcher goes on from the state it wrote last, and writes that back.",
                self.workflow,
                problem,
            )
            return copy.deepcopy(self._written)
        self.log.error(
            "Workflow %s: its state in Airflow's asset state store is not the one this watcher wrote: %s. Someone "
            "allowed to edit assets may have written it through the REST API (see SECURITY.md), or the seal key "
            "changed. It is not used: this poll takes a new baseline and starts nothing; records that start "
            "matching afterwards start runs.",
            self.workflow,
            problem,
        )
        return counters_only(stored)

    async def _advance(self, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
        at = datetime.fromtimestamp(snapshot["at"], UTC).isoformat(timespec="seconds")
        if not snapshot["ok"]:
            self.log.warning(
                "Workflow %s: could not read Oomnitza (%s). Nothing changes until a poll succeeds.",
                self.workflow,
                snapshot["error"],
            )
            await self.store.aset(LAST_POLL_KEY, {"at": at, "ok": False, "error": snapshot["error"]})
            return []
        for warning in snapshot["warnings"]:
            self.log.warning("Workflow %s: %s", self.workflow, warning)
        matching, without_id = self.matching(snapshot["records"])
        if without_id:
            self.log.warning(
                "Workflow %s: %d matching record(s) have no %s and are left out",
                self.workflow,
                without_id,
                ID_FIELD,
            )
        state = await self._read_state()
        claimed = set()
        for key in (state or {}).get("pending", {}):
            # A claim only stops an entry being sent again (what acts is checked against the sealed state and
            # the sent: marks), so any claim counts: a forged one can at most keep a lost event from being sent
            # again, as deleting the state can; and a worker without the seal key still claims.
            if await self.store.aget(CLAIM_PREFIX + key):
                claimed.add(key)
        missing = inside_but_missing(state, matching, self.conditions_fingerprint)
        gone = await self._confirm_gone(missing, answered=len(snapshot["records"]))
        new_state, events = advance(
            state,
            matching,
            now=snapshot["at"],
            claimed=claimed,
            reemit_after=self.reemit_after,
            conditions=self.conditions_fingerprint,
            gone=gone,
        )
        if new_state != state or self._rewrite:
            # Written before the events are handed over: see state.py for why this is safe.
            new_state = {**new_state, "seq": _write_number(state or {}) + 1}
            await self.store.aset(STATE_KEY, seal(sealed_under(self.workflow, STATE_KEY), new_state))
            self._written, self._rewrite = copy.deepcopy(new_state), False
        for key in claimed:
            await self.store.adelete(CLAIM_PREFIX + key)
        if new_state.get("baseline_at") == snapshot["at"]:
            self.log.info(
                "Workflow %s: first poll (of this workflow, or since its conditions changed); %d record(s) "
                "already match (%s) and start no run. From now on each record that starts matching starts "
                "one run.",
                self.workflow,
                len(matching),
                self.spec.describe(),
            )
        for entry in events:
            self.log.info(
                "Workflow %s: record %s (serial %s) %s; entry %s",
                self.workflow,
                entry["record_id"],
                entry["serial_number"],
                "started matching" if entry["sent"] == 1 else "still unclaimed, sent again",
                entry["key"],
            )
        await self.store.aset(
            LAST_POLL_KEY,
            {
                "at": at,
                "ok": True,
                "matching": len(matching),
                "started": len(events),
                "warnings": snapshot["warnings"],
            },
        )
        # One event for the whole poll: its entries share one run.
        return [{"workflow": self.workflow, "entries": events, "poll_at": at}] if events else []
