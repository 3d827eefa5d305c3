"""workflows/state.py: exactly once per entry into a workflow's condition, and only the watcher's entries."""

from __future__ import annotations

import copy

from helpers.workflow_files import step

from kandji_oomnitza.workflows.state import (
    advance,
    authentic,
    entries_of,
    first_sent_before,
    inside_but_missing,
)


def test_first_poll_is_a_baseline_then_one_event_per_entry():
    state, events = step(None, ["a"], 0)
    assert events == [] and state["records"]["a"]["inside"]
    state, events = step(state, ["a", "b"], 10)
    assert [e["key"] for e in events] == ["b#1"]
    state, events = step(state, ["a", "b"], 20, claimed=["b#1"])
    assert events == [] and state["pending"] == {}
    state, events = step(state, ["a"], 30)  # b is missing once: maybe a short read, not gone yet
    state, events = step(state, ["a", "b"], 35)
    assert events == []
    state, events = step(state, ["a"], 40)  # b leaves: missing from two polls in a row
    state, events = step(state, ["a"], 45)
    assert events == [] and not state["records"]["b"]["inside"]
    state, events = step(state, ["a", "b"], 50)  # and enters again
    assert [e["key"] for e in events] == ["b#2"]


def test_one_empty_read_does_not_turn_every_match_into_a_new_entry():
    state, _ = step(None, ["a", "b"], 0)
    state, events = step(state, [], 10)  # Oomnitza answered [] once
    state, events = step(state, ["a", "b"], 20)
    assert events == []


def test_changed_conditions_start_from_what_matches_now():
    state, _ = step(None, ["a"], 0)
    state, _ = advance(state, {"a": {}}, now=10, claimed=set(), reemit_after=900, conditions="lost")
    state, events = advance(
        state, {"a": {}, "s": {}}, now=20, claimed=set(), reemit_after=900, conditions="lost-or-stolen"
    )
    assert events == []  # a year of stolen assets start nothing when the condition is widened
    state, events = advance(
        state,
        {"a": {}, "s": {}, "n": {}},
        now=30,
        claimed=set(),
        reemit_after=900,
        conditions="lost-or-stolen",
    )
    assert [e["key"] for e in events] == ["n#1"]


def test_an_unclaimed_entry_is_sent_again_under_the_same_key_only_after_the_grace():
    state, _ = step(None, [], 0)
    state, events = step(state, ["b"], 10)
    assert [e["key"] for e in events] == ["b#1"]
    state, events = step(state, ["b"], 20, reemit_after=100)
    assert events == []
    state, events = step(state, [], 200, reemit_after=100)  # lost event: sent again even if b leaves
    assert [(e["key"], e["sent"]) for e in events] == [("b#1", 2)]
    state, events = step(state, [], 250, claimed=["b#1"], reemit_after=100)
    assert events == [] and state["pending"] == {}


def test_a_restart_that_reads_the_saved_state_repeats_nothing():
    state, _ = step(None, [], 0)
    saved, events = step(state, ["b"], 10)
    assert len(events) == 1
    _, events = step(copy.deepcopy(saved), ["b"], 15)  # a new triggerer, same store
    assert events == []


def test_only_entries_the_watcher_produced_are_authentic():
    state, _ = step(None, [], 0)
    state, (real,) = step(state, ["b"], 10)
    assert authentic(state, real) and real["nonce"] == state["records"]["b"]["nonces"]["1"]
    assert entries_of({"entries": [real]}) == [real] and entries_of(real) == [real] and entries_of({}) == []
    forged = [
        {**real, "nonce": "0" * 32},  # a made-up nonce
        {**real, "entry": 2, "key": "b#2"},  # an entry the watcher never started
        {**real, "key": "c#1"},  # a key that names another record
        {key: value for key, value in real.items() if key != "nonce"},
        {**real, "entry": "1"},
    ]
    assert not any(authentic(state, entry) for entry in forged)
    state, _ = step(state, [], 20)
    state, _ = step(state, [], 30)  # b leaves
    state, (again,) = step(state, ["b"], 40)
    assert again["key"] == "b#2" and authentic(state, again) and authentic(state, real)  # both remembered


def test_a_record_missing_from_a_poll_leaves_only_when_confirmed_gone():
    state, _ = step(None, ["a", "b"], 0)
    for now in (10, 20, 30):  # b missing, but read again it still matches: not gone
        state, events = advance(state, {"a": {}}, now=now, claimed=set(), reemit_after=900, gone=set())
        assert events == [] and state["records"]["b"]["inside"]
    assert inside_but_missing(state, ["a"], "") == ["b"]
    for now in (40, 50):
        state, _ = advance(state, {"a": {}}, now=now, claimed=set(), reemit_after=900, gone={"b"})
    assert not state["records"]["b"]["inside"] and inside_but_missing(state, ["a"], "") == []


def test_only_the_first_event_of_an_entry_is_acted_on():
    assert first_sent_before("b#1", 12, [(10, "b#1"), (11, "c#1"), (12, "b#1")]) == 10
    assert first_sent_before("b#1", 10, [(10, "b#1"), (11, "b#1"), (9, "c#1")]) is None
