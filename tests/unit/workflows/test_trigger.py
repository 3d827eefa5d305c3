"""workflows/trigger.py: the watcher keeps its state and fires one event per poll."""

from __future__ import annotations

import asyncio

from helpers.workflow_files import DATA
from helpers.workflow_runs import opened

from kandji_oomnitza.workflows.state import (
    authentic,
)
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger


def test_the_trigger_keeps_state_and_starts_one_event_per_entry():
    spec = DATA["trigger"]
    trigger = OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x", trigger=spec, serial_field="serial_number", record_fields=["status"]
    )
    assert trigger.serialize()[1]["trigger"] == spec

    def snapshot(*statuses):
        records = [
            {"equipment_id": f"e{i}", "serial_number": f"S{i}", "status": s} for i, s in enumerate(statuses)
        ]
        return {"ok": True, "records": [*records, {"status": "Lost"}], "warnings": [], "at": 1.0}

    async def scenario():
        first = await trigger._advance(snapshot("Lost", "In Use"))
        second = await trigger._advance(snapshot("Lost", "Lost"))
        failed = await trigger._advance({"ok": False, "error": "HTTP 503", "at": 2.0})
        third = await trigger._advance(snapshot("Lost", "Lost"))
        return first, second, failed, third

    first, second, failed, third = asyncio.run(scenario())
    assert first == [] and failed == [] and third == []
    assert len(second) == 1 and [
        (e["record_id"], e["serial_number"], e["fields"]) for e in second[0]["entries"]
    ] == [("e1", "S1", {"status": "Lost"})]
    assert trigger.store.values["last_poll"]["ok"] is True


def test_records_entering_in_the_same_poll_share_one_event():
    trigger = OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x", trigger=DATA["trigger"], serial_field="serial_number", record_fields=[]
    )

    def snapshot(lost: int, at: float) -> dict:
        records = [{"equipment_id": f"e{i}", "serial_number": f"S{i}", "status": "Lost"} for i in range(lost)]
        return {
            "ok": True,
            "records": records or [{"equipment_id": "x", "status": "In Use"}],
            "warnings": [],
            "at": at,
        }

    async def scenario():
        await trigger._advance(snapshot(0, 1.0))
        return await trigger._advance(snapshot(3, 2.0))

    (event,) = asyncio.run(scenario())
    assert [e["key"] for e in event["entries"]] == ["e0#1", "e1#1", "e2#1"]
    state = opened(trigger.store.values["state"])
    assert all(authentic(state, entry) for entry in event["entries"])
