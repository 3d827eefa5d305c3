"""integrations/steps.py: the load's accounting of what Oomnitza's run log confirms, pins down or cannot
say, on hand-made ledgers and run logs (no server: the edge cases, one by one)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from helpers.harness import ROOT

from kandji_oomnitza.hooks.oomnitza import SENT, UNCONFIRMED, Batch, ConnectorRun, RunOutcome, RunResult
from kandji_oomnitza.hooks.oomnitza_protocol import Preference
from kandji_oomnitza.integrations.accounting import FAILED_SILENTLY, silent_failures
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.steps import _confirmed, _pinpoint_unaccounted, load_result

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
ASSETS = Integration.model_validate(DATA)
SERIALS = ["S0", "S1", "S2", "S3"]


def records() -> pd.DataFrame:
    return pd.DataFrame({"serial_number": SERIALS, "_kandji_id": [f"d{i}" for i in range(4)]})


def finished(
    counts: dict[str, int], messages: dict[str, list[str]] | None = None, *, batches=None, rejects=0
):
    """A run that sent the four records in two batches (and ``rejects`` rejected ones), and its log."""
    run = ConnectorRun(
        hook=None,
        data_type="assets",
        sync_field=("serial_number",),
        preference=Preference.CREATE_AND_UPDATE,
        connector_name="t",
        test_run=False,
        batch_size=2,
        portion="p",
    )
    run.batches = batches or [Batch("records", [0, 1], state=SENT), Batch("records", [2, 3], state=SENT)]
    if rejects:
        run.batches.append(Batch("rejects", list(range(rejects)), state=SENT, error="bad"))
    logs = {"objects": counts, "logs": messages or {}, "status": "finished"}
    return RunResult(run=run, outcome=RunOutcome.from_run_log("p", logs))


@pytest.mark.parametrize(
    ("failed", "messages", "own", "rejects", "silent"),
    [
        (0, [], set(), 0, 0),
        (2, [], set(), 0, 2),  # counted, never described
        (2, ["'S1' failed: bad value"], set(), 0, 1),
        (3, ["rejected: no serial"], {"rejected: no serial"}, 1, 2),  # our own reject, echoed back
        (1, ["'S1' failed", "'S2' failed"], set(), 0, 0),  # more messages than the count: never negative
        (2, [], set(), 2, 0),  # both failures are the rejects we sent
    ],
)
def test_silent_failures_are_the_count_less_our_rejects_and_the_messages(
    failed, messages, own, rejects, silent
):
    assert silent_failures(failed, messages, own, rejects) == silent


def test_everything_counted_and_nothing_named_confirms_every_record_sent():
    run = finished({"updated": 4})
    assert _pinpoint_unaccounted(ASSETS, records(), run, set()) == 0
    assert _confirmed(ASSETS, records(), run, set(), 0) == {0, 1, 2, 3}


def test_records_named_by_a_failed_or_skipped_message_are_not_confirmed():
    run = finished(
        {"updated": 2, "failed": 1, "skipped": 1}, {"failed": ["'S1' bad"], "skipped": ['"S3" not found']}
    )
    assert _confirmed(ASSETS, records(), run, set(), 0) == {0, 2}


def test_a_batch_that_did_not_arrive_confirms_none_of_its_records():
    batches = [Batch("records", [0, 1], state=SENT), Batch("records", [2, 3], state=UNCONFIRMED)]
    run = finished({"updated": 2}, batches=batches)
    assert _confirmed(ASSETS, records(), run, set(), 0) == {0, 1}


def test_no_run_log_confirms_nothing():
    run = finished({"updated": 4})
    run.outcome = None
    assert _confirmed(ASSETS, records(), run, set(), 0) == set()
    assert _pinpoint_unaccounted(ASSETS, records(), run, set()) == 0


def test_failures_counted_but_not_named_are_pinned_to_the_records_no_message_names():
    run = finished({"updated": 3, "failed": 1})
    pinned = _pinpoint_unaccounted(ASSETS, records(), run, set())
    assert pinned == 0  # four sent, four counted, one failure: four candidates for one failure
    run = finished(
        {"updated": 2, "failed": 2}, {"failed": []}, batches=[Batch("records", [0, 1], state=SENT)]
    )
    assert _pinpoint_unaccounted(ASSETS, records(), run, set()) == 2
    (moved,) = [b for b in run.run.batches if b.state == FAILED_SILENTLY]
    assert moved.positions == [0, 1] and [b.positions for b in run.run.batches if b.state == SENT] == [[]]


def test_records_the_log_does_not_mention_become_unconfirmed_when_they_can_be_named():
    run = finished({"updated": 3}, {"updated": ["'S0'", "'S1'", "'S2'"]})
    assert _pinpoint_unaccounted(ASSETS, records(), run, set()) == 0  # unconfirmed, not a silent failure
    (moved,) = [b for b in run.run.batches if b.state == UNCONFIRMED]
    assert moved.positions == [3] and "accounts for 3 of 4" in moved.detail
    # Once the unmentioned record is set apart, the log accounts for every record still counted as sent.
    assert _confirmed(ASSETS, records(), run, set(), 0) == {0, 1, 2}


def test_silent_failures_confirm_nothing_unless_every_one_was_pinned():
    run = finished({"updated": 3, "failed": 1})
    assert _confirmed(ASSETS, records(), run, set(), pinned=0) == set()
    assert _confirmed(ASSETS, records(), run, set(), pinned=1) == {0, 1, 2, 3}


def test_the_load_result_lists_only_the_batches_that_did_not_arrive_cleanly():
    batches = [
        Batch("records", [0, 1], state=SENT),
        Batch("records", [2, 3], state=UNCONFIRMED, detail="cut"),
    ]
    run = finished({"updated": 2, "failed": 1}, {"failed": ["'S9' x"], "updated": ["'S0'"]}, batches=batches)
    run.run.hook = type("Hook", (), {"calls": 5, "retries": 1})()
    result = load_result(run, total_records=4, total_rejects=0)
    assert [(p.positions, p.state, p.detail) for p in result.problems] == [([2, 3], UNCONFIRMED, "cut")]
    assert result.outcome.counts["failed"] == 1 and "updated" not in result.outcome.messages
    assert (result.calls, result.retries, result.sent) == (5, 1, 2)
