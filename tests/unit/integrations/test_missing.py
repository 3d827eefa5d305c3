"""integrations/missing.py: when a record counts as gone from Kandji, and what a run flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration, WhenMissing
from kandji_oomnitza.integrations.missing import cutoff_of, listing_completeness, parse_time, same_value

ASSETS = Integration.model_validate(
    yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
)


MOMENT = datetime(2026, 11, 20, 10, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["2026-11-20T10:04:05Z", "2026-11-20 10:04:05+00:00", "2026-11-20T11:04:05+01:00", 1795169045, "1795169045",
     1795169045000],
)  # fmt: skip
def test_parse_time_reads_iso_text_and_epoch_seconds_or_milliseconds(value):
    assert parse_time(value) == MOMENT


@pytest.mark.parametrize("value", [None, "", "   ", "soon", True, [], "2026-13-40"])
def test_parse_time_is_none_for_what_is_not_a_time(value):
    assert parse_time(value) is None


def test_cutoff_is_the_read_time_less_the_grace_period():
    assert cutoff_of("2026-11-27T10:00:00Z", timedelta(days=7)) == "2026-11-20T10:00:00Z"
    assert cutoff_of("2026-11-27T10:00:00Z", timedelta(hours=12)) == "2026-11-26T22:00:00Z"


def test_listing_is_complete_unless_kandji_counts_more_than_it_listed():
    assert listing_completeness("assets", 300, None).complete  # no total given: every page was read
    assert listing_completeness("assets", 301, 300).complete  # a device added during the walk
    partial = listing_completeness("assets", 297, 300)
    assert not partial.complete
    assert partial.why == "Kandji says it holds 300 devices but the listing returned 297"


@pytest.mark.parametrize(
    ("current", "wanted", "same"),
    [("Not in Kandji", "Not in Kandji", True), ("Deployed", "Not in Kandji", False), (None, None, True),
     ("", None, True), ("x", None, False), (True, True, True), ("true", True, True), (7, 7, True), ("7", 7, True)],
)  # fmt: skip
def test_same_value(current, wanted, same):
    assert same_value(current, wanted) is same


def test_dag_docs_and_tiles_say_what_happens_to_records_gone_from_kandji():
    on = ASSETS.model_copy(
        update={"when_missing": WhenMissing(after_days=7, set={"status": "Not in Kandji"})}
    )
    assert ASSETS.when_missing_words == "left as they are (when_missing is off)"
    assert on.when_missing_words == (
        'after 7 days unseen, set status = "Not in Kandji" once (never deleted); only after a complete Kandji listing'
    )
    half = ASSETS.model_copy(
        update={
            "when_missing": WhenMissing(
                after_days=1, set={"kandji_missing": True}, clear_when_seen={"status": None}
            )
        }
    )
    assert half.when_missing_words.startswith(
        "after 1 day unseen, set kandji_missing = true once (never deleted); back in Kandji, set status = null"
    )


def test_a_flag_counts_only_when_oomnitza_confirms_it():
    from kandji_oomnitza.hooks.oomnitza import ConnectorRun, RunOutcome, RunResult
    from kandji_oomnitza.hooks.oomnitza_protocol import Preference
    from kandji_oomnitza.integrations.missing import _account

    def entry(serial):
        return {
            "kandji_id": f"d-{serial}",
            "sync_key": f"serial_number='{serial}'",
            "keys": {"serial_number": serial},
        }

    sent = [
        (entry("A"), {"status": "x"}, True),
        (entry("B"), {"status": "x"}, True),
        (entry("C"), {"status": "y"}, False),
    ]
    run = ConnectorRun(hook=None, data_type="assets", sync_field=("serial_number",), preference=Preference.UPDATE_ONLY,
                       connector_name="c", test_run=False, batch_size=100, portion="p")  # fmt: skip

    def done(objects, logs=None):
        return RunResult(
            run=run,
            outcome=RunOutcome.from_run_log("p", {"status": "done", "objects": objects, "logs": logs or {}}),
        )

    flagged, cleared, not_flagged = _account(
        sent, done({"updated": 2, "failed": 1}, {"failed": ["'B' invalid status"]})
    )
    assert [e["kandji_id"] for e in flagged] == ["d-A"] and [e["kandji_id"] for e in cleared] == ["d-C"]
    assert (
        not_flagged[0]["kandji_id"] == "d-B"
        and not_flagged[0]["reason"] == "failed in Oomnitza: 'B' invalid status"
    )
    flagged, cleared, not_flagged = _account(sent, done({"updated": 2, "failed": 1}))  # unnamed failure
    assert (
        flagged == cleared == []
        and len(not_flagged) == 3
        and "without naming them" in not_flagged[0]["reason"]
    )
    nothing = RunResult(run=run, outcome=None, outcome_error="HTTP 503")
    flagged, cleared, not_flagged = _account(sent, nothing)
    assert flagged == [] and all("not confirmed by Oomnitza: HTTP 503" in e["reason"] for e in not_flagged)
