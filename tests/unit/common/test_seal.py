"""common/seal.py: what this product keeps where others can write is told apart from what it did not write."""

from __future__ import annotations

import asyncio

import pytest
from helpers.workflow_files import DATA

from kandji_oomnitza.common import seal as sealing
from kandji_oomnitza.common.seal import seal, unseal


def watcher():
    """A workflow's watcher as the triggerer runs it, its store in memory (a unit test's)."""
    from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger

    return OomnitzaRecordsTrigger(
        workflow="kandji_workflow_x", trigger=DATA["trigger"], serial_field="serial_number", record_fields=[]
    )


def snapshot(at: float, *lost: str) -> dict:
    """A successful poll at ``at`` in which the records ``lost`` match (status Lost)."""
    records = [{"equipment_id": rid, "serial_number": f"S{rid}", "status": "Lost"} for rid in lost]
    return {"ok": True, "records": records or [{"equipment_id": "x", "status": "In Use"}], "warnings": [], "at": at}  # fmt: skip


def test_a_sealed_value_reads_back_and_any_change_or_move_is_told():
    assert sealing.sealing(), "the tests run with [kandji_oomnitza] state_seal_key set (tests/conftest.py)"
    stored = seal("wf/sent:e1#1", {"run_id": "r1", "at": "2026-12-08T00:00:00+00:00"})
    assert unseal("wf/sent:e1#1", stored) == ({"run_id": "r1", "at": "2026-12-08T00:00:00+00:00"}, None)
    changed = {**stored, "sealed": {**stored["sealed"], "run_id": "r2"}}
    assert unseal("wf/sent:e1#1", changed)[1].startswith("its seal does not match")
    assert unseal("wf/sent:e1#2", stored)[1].startswith("its seal does not match")  # moved to another key
    value, problem = unseal("wf/state", {"records": {}})  # what the REST API lets role op write
    assert value is None and problem.startswith("it carries no seal")
    assert unseal("wf/state", None) == (None, None)


def test_without_a_key_values_are_kept_as_they_are(monkeypatch):
    monkeypatch.setattr(sealing, "_key", lambda: None)
    assert seal("wf/state", {"a": 1}) == {"a": 1}
    assert unseal("wf/state", {"a": 1}) == ({"a": 1}, None)


@pytest.mark.parametrize("derived_from", ["state_seal_key", "fernet_key"])
def test_the_key_comes_from_airflows_configuration(monkeypatch, derived_from):
    sealing._key.cache_clear()
    try:
        if derived_from == "fernet_key":
            monkeypatch.delenv("AIRFLOW__KANDJI_OOMNITZA__STATE_SEAL_KEY")
            monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "CeP0eFhPqRZ-P8kLB-jetNuebnL1Ok-1KA8RkjnKsbc=")
        first = sealing._key()
        sealing._key.cache_clear()
        monkeypatch.setenv(
            "AIRFLOW__KANDJI_OOMNITZA__STATE_SEAL_KEY"
            if derived_from == "state_seal_key"
            else "AIRFLOW__CORE__FERNET_KEY",
            "another-key",
        )
        assert first is not None and sealing._key() not in (None, first)
    finally:
        sealing._key.cache_clear()


def test_after_a_restart_the_watcher_does_not_use_a_state_it_did_not_write_and_keeps_only_its_counters():
    from helpers.workflow_runs import opened

    trigger = watcher()

    async def scenario():
        await trigger._advance(snapshot(1.0))
        (event,) = await trigger._advance(snapshot(2.0, "e1"))
        # Someone allowed to edit assets writes a state of their own: e1 left, with an entry #7 and a nonce.
        forged = opened(trigger.store.values["state"])
        forged["records"]["e1"] = {"entry": 7, "inside": False, "missing": 2, "nonces": {"7": "f" * 32}}
        forged["baseline"] = True
        trigger.store.values["state"] = forged
        # ... and the triggerer restarts, so the watcher has no state of its own in memory to go on from.
        restarted = watcher()
        restarted._memory = trigger._memory
        after = await restarted._advance(snapshot(3.0, "e1", "e2"))
        return event, after

    event, after = asyncio.run(scenario())
    assert [e["key"] for e in event["entries"]] == ["e1#1"]
    assert after == [], "a state the watcher did not write starts nothing (a new baseline instead)"
    state, problem = unseal("kandji_workflow_x/state", trigger.store.values["state"])
    assert problem is None, "the watcher wrote its own, sealed, state back"
    assert state["records"]["e1"]["entry"] == 7 and "nonces" not in state["records"]["e1"]  # counters kept
    assert state["records"]["e2"]["inside"] and "f" * 32 not in str(state)


def test_while_the_triggerer_runs_a_replaced_or_replayed_state_changes_nothing():
    """An older state of the watcher's own, sealed, put back (role op can read and write the store), or
    junk: the watcher goes on from the state it wrote last and writes that back; nothing restarts."""
    trigger = watcher()

    async def scenario():
        await trigger._advance(snapshot(1.0))
        old = trigger.store.values["state"]  # baseline: e1 not matching yet
        (event,) = await trigger._advance(snapshot(2.0, "e1"))
        trigger.store.values["state"] = old  # put back: e1 would enter again, as entry #1
        replayed = await trigger._advance(snapshot(3.0, "e1"))
        trigger.store.values["state"] = ["not", "a", "state"]
        junk = await trigger._advance(snapshot(4.0, "e1"))
        return event, replayed, junk

    event, replayed, junk = asyncio.run(scenario())
    assert [e["key"] for e in event["entries"]] == ["e1#1"]
    assert replayed == [] and junk == [], "e1 is still inside: nothing starts again"
    state, problem = unseal("kandji_workflow_x/state", trigger.store.values["state"])
    assert problem is None and state["records"]["e1"]["inside"] and state["records"]["e1"]["entry"] == 1
    assert state["seq"] == 4  # baseline, entry, and each refused value written over


def test_without_a_key_a_state_that_is_not_an_object_is_refused_not_a_crash(monkeypatch):
    monkeypatch.setattr(sealing, "_key", lambda: None)
    trigger = watcher()
    trigger.store.values["state"] = "text"
    assert asyncio.run(trigger._advance(snapshot(1.0, "e1"))) == []  # a new baseline
    assert trigger.store.values["state"]["baseline"] is True


def test_flag_missing_refuses_a_listing_or_ids_changed_after_their_task_wrote_them():
    """What extract and transform hand flag_missing is sealed as they write it (integrations/dag.py); an
    XCom edited afterwards (Airflow's REST API lets role user) is refused before anything is decided. The
    untouched path runs in every when_missing end-to-end test (their flag_missing would fail otherwise)."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from kandji_oomnitza import names
    from kandji_oomnitza.common.seal import seal_of
    from kandji_oomnitza.integrations.operator import FlaggingRun
    from kandji_oomnitza.integrations.steps import handover_seal_scope

    stats = {"read_at": "2026-12-08T00:00:00Z", "listing": {"listed": 30, "complete": True}}
    ids = ["id-1", "id-2"]
    xcoms = {
        (names.EXTRACT, names.HANDOVER_SEAL): seal_of(handover_seal_scope("d", "r", names.EXTRACT), stats),
        (names.TRANSFORM, names.HANDOVER_SEAL): seal_of(handover_seal_scope("d", "r", names.TRANSFORM), ids),
    }
    run = object.__new__(FlaggingRun)  # only the check: the rest of a run needs a task's context
    run.ti = SimpleNamespace(
        dag_id="d", run_id="r", xcom_pull=lambda task_ids, key: xcoms.get((task_ids, key))
    )
    run._check_sealed(names.EXTRACT, stats, "the listing")  # as written: fine
    run._check_sealed(names.TRANSFORM, ids, "the ids")
    for task_id, edited in (
        (names.EXTRACT, {**stats, "read_at": "2027-06-01T00:00:00Z"}),  # a later cutoff: more records "gone"
        (names.TRANSFORM, ["id-1"]),  # a listed device left out
    ):
        with pytest.raises(
            AirflowFailException, match=r"changed after the task wrote it.*Nothing was flagged"
        ):
            run._check_sealed(task_id, edited, "what it handed over")
    del xcoms[(names.TRANSFORM, names.HANDOVER_SEAL)]
    with pytest.raises(AirflowFailException, match="carries no seal"):
        run._check_sealed(names.TRANSFORM, ids, "the ids")
