"""integrations/report.py: every record accounted for, whatever happened upstream (each step's hand-over,
or None where it did not finish), on hand-made hand-overs: the edge cases, one by one."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from helpers.harness import ROOT

from kandji_oomnitza.exceptions import RunIncomplete, TooManyFailures
from kandji_oomnitza.hooks.oomnitza import REFUSED, UNCONFIRMED, UNSENT
from kandji_oomnitza.integrations.accounting import (
    BACK,
    FAILED,
    FAILED_SILENTLY,
    FATAL,
    FLAGGED,
    NOT_FLAGGED,
    REJECTED,
    SKIPPED,
    WITHOUT_SOFTWARE,
    WOULD_FLAG,
    error_csv,
    error_rows,
    missing_rows,
    safe_cell,
)
from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.handover import (
    BatchProblem,
    DeltaSummary,
    ExtractStats,
    FieldCheck,
    LoadResult,
    MissingEntry,
    MissingResult,
    Outcome,
    SoftwareStats,
)
from kandji_oomnitza.integrations.report import build_report
from kandji_oomnitza.integrations.storage import run_folder

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
ASSETS = Integration.model_validate(DATA)
GONE = Integration.model_validate(
    {
        **DATA,
        "when_missing": {
            "after_days": 7,
            "set": {"status": "Not in Kandji"},
            "clear_when_seen": {"status": "Deployed"},
        },
    }
)


def index(rejected: int = 1) -> pd.DataFrame:
    """The transform's report index: four records to send, then ``rejected`` rejected ones."""
    rows = [
        {"_kandji_id": f"d{i}", "_label": f"Mac {i}", "serial_number": f"S{i}", "_reason": None}
        for i in range(4)
    ]
    rows += [
        {
            "_kandji_id": f"r{i}",
            "_label": f"Bad {i}",
            "serial_number": None,
            "_reason": "empty sync key",
            "_sync_key": "",
        }
        for i in range(rejected)
    ]
    return pd.DataFrame(rows)


def loaded(**changes) -> LoadResult:
    base = {
        "portion": "p",
        "records": 4,
        "rejects": 1,
        "added_to_run": {"records": 4, "rejects": 1},
        "sent": 4,
    }
    return LoadResult.model_validate(
        {**base, "outcome": {"status": "finished", "counts": {"updated": 4}}, **changes}
    )


def stages(rows) -> list[tuple[str, str]]:
    return [(r["stage"], r["kandji_id"]) for r in rows]


def test_a_clean_load_lists_only_its_rejects():
    assert stages(error_rows(ASSETS, index(), loaded())) == [(REJECTED, "r0")]


def test_a_transform_that_did_not_finish_lists_nothing_and_a_load_that_did_not_run_lists_every_record():
    assert error_rows(ASSETS, None, None) == []
    rows = error_rows(ASSETS, index(), None, not_loaded_because="the extract did not finish")
    assert stages(rows) == [(REJECTED, "r0")] + [(UNSENT, f"d{i}") for i in range(4)]
    assert rows[-1]["reason"] == "the extract did not finish"


def test_a_load_that_stopped_lists_its_failed_batches_and_what_it_never_sent():
    result = loaded(
        added_to_run={"records": 3, "rejects": 0},
        sent=2,
        failure="HTTP 400 on bulk",
        problems=[BatchProblem(kind="records", positions=[2], state=REFUSED, detail="HTTP 400")],
        outcome=Outcome(status="finished", counts={"updated": 2}),
    )
    rows = stages(error_rows(ASSETS, index(0), result))
    assert rows == [(REFUSED, "d2"), (UNSENT, "d3")]


def test_without_oomnitzas_run_log_every_record_sent_is_unconfirmed():
    rows = error_rows(ASSETS, index(0), loaded(outcome=None, outcome_error="HTTP 503"))
    assert stages(rows) == [(UNCONFIRMED, f"d{i}") for i in range(4)]
    assert "HTTP 503" in rows[0]["reason"]


def test_oomnitzas_messages_are_pinned_to_their_records_and_our_echoed_rejects_are_not_listed_twice():
    outcome = Outcome(
        status="finished",
        counts={"updated": 1, "failed": 2, "skipped": 1},  # our reject and S1
        messages={
            "failed": ["'S1' has an invalid model", "empty sync key"],  # the second: our reject, echoed
            "skipped": ['"S2" not found'],
            "Fatal Error": ["the bulk endpoint restarted"],
        },
    )
    rows = error_rows(ASSETS, index(), loaded(outcome=outcome, rejected_sent=1))
    assert stages(rows) == [(REJECTED, "r0"), (FAILED, "d1"), (SKIPPED, "d2"), (FATAL, "")]


def test_failures_counted_without_a_message_are_listed_less_those_the_load_pinned():
    outcome = Outcome(status="finished", counts={"updated": 1, "failed": 3})
    rows = stages(error_rows(ASSETS, index(0), loaded(outcome=outcome)))
    assert rows == [(FAILED_SILENTLY, "")] * 3
    rows = stages(error_rows(ASSETS, index(0), loaded(outcome=outcome, silent_failures_named=2)))
    assert rows == [(FAILED_SILENTLY, "")]


def test_a_delta_load_maps_its_positions_back_to_the_records_it_sent():
    result = loaded(
        sent=2,
        added_to_run={"records": 2, "rejects": 0},
        delta=DeltaSummary(mode="delta", seen=4, changed=2, sent=2, sent_positions=[1, 3]),
        problems=[BatchProblem(kind="records", positions=[1], state=UNCONFIRMED, detail="cut")],
    )
    assert stages(error_rows(ASSETS, index(0), result)) == [(UNCONFIRMED, "d3")]


def test_a_dry_run_lists_only_its_rejects_and_a_device_without_software_is_named():
    assert stages(error_rows(ASSETS, index(), LoadResult(dry_run=True, would_send=4))) == [(REJECTED, "r0")]
    rows = error_rows(ASSETS, index(0), loaded(), software_unread={"d2": "its apps could not be read (404)"})
    assert (
        stages(rows) == [(WITHOUT_SOFTWARE, "d2")]
        and "Oomnitza keeps the software it had" in rows[0]["reason"]
    )


def test_missing_rows_name_flagged_cleared_and_refused_records():
    entry = MissingEntry(kandji_id="d9", sync_key="serial_number='S9'", last_seen="2026-11-01T00:00:00Z")
    result = MissingResult(
        status="sent",
        after_days=7,
        flagged=[entry],
        cleared=[entry.model_copy(update={"kandji_id": "d8"})],
        not_flagged=[entry.model_copy(update={"kandji_id": "d7", "reason": "failed in Oomnitza: x"})],
    )
    rows = missing_rows(GONE, result)
    assert stages(rows) == [(FLAGGED, "d9"), (BACK, "d8"), (NOT_FLAGGED, "d7")]
    assert (
        "last seen 2026-11-01T00:00:00Z" in rows[0]["reason"] and rows[2]["reason"] == "failed in Oomnitza: x"
    )
    dry = missing_rows(GONE, result.model_copy(update={"dry_run": True, "cleared": [], "not_flagged": []}))
    assert stages(dry) == [(WOULD_FLAG, "d9")]
    assert missing_rows(ASSETS, result) == [] and missing_rows(GONE, None) == []


def _report(**handovers):
    written = []
    defaults = {
        "checked": FieldCheck(),
        "extracted": ExtractStats(read_at="2026-11-28T10:00:00Z", count=5),
        "index": index(),
        "loaded": loaded(),
        "missing": None,
    }
    report = build_report(
        ASSETS,
        **{**defaults, **handovers},
        started=0.0,
        write_error_log=lambda text: written.append(text) or "f",
    )
    return report, written[0]


@pytest.mark.parametrize(
    ("handovers", "why"),
    [
        ({"extracted": None}, "Kandji was not read"),
        ({"index": None}, "The transform did not finish"),
        ({"loaded": None}, "The load did not run"),
        ({"loaded": None, "checked": None}, "The Oomnitza field check stopped the run"),
        ({"loaded": loaded(failure="HTTP 400 on bulk")}, "The load stopped: HTTP 400 on bulk"),
    ],
)
def test_a_step_that_did_not_finish_fails_the_run_and_says_which(handovers, why):
    report, _ = _report(**handovers)
    assert report.failure_type is RunIncomplete and report.failure.startswith(why)
    assert report.summary.failure == report.failure  # what the failed run pushes as XCom summary


def test_more_failures_than_allowed_fail_the_run_after_everything_else_loaded():
    report, text = _report()
    assert report.failure_type is TooManyFailures and report.summary.failures == 1  # the reject
    assert "1 record(s) failed to load (allowed: 0)" in report.failure
    assert text.splitlines()[0] == "stage,sync_key,kandji_id,name,reason" and "r0" in text
    clean, _ = _report(index=index(0))
    assert clean.failure is None and clean.summary.failures == 0 and clean.summary.updated == 4


def test_the_summary_carries_the_software_route_and_every_warning():
    extracted = ExtractStats(
        read_at="t",
        count=4,
        software=SoftwareStats(
            route="prism", software_rows=12, fallbacks=["Prism export failed; pages used"]
        ),
    )
    report, _ = _report(index=index(0), extracted=extracted, loaded=loaded(outcome=None, outcome_error="x"))
    assert report.summary.software_route == "prism" and report.summary.software_rows == 12
    assert (
        report.warnings[0] == "Prism export failed; pages used" and "could not be read" in report.warnings[1]
    )


def test_flagging_that_did_not_finish_fails_the_run_of_an_integration_that_flags():
    report = build_report(
        GONE,
        checked=FieldCheck(),
        extracted=ExtractStats(read_at="t"),
        index=index(0),
        loaded=loaded(),
        missing=None,
        started=0.0,
        write_error_log=lambda text: "f",
    )
    assert report.failure.startswith("Flagging records gone from Kandji did not finish")


def test_cells_cannot_run_as_formulas_and_hold_no_credential():
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and safe_cell(None) == ""
    assert "secret-pw" not in error_csv([{"stage": "x", "reason": "https://u:secret-pw@host/"}])


def test_every_run_id_gets_its_own_report_folder():
    assert run_folder("run:1") != run_folder("run_1") and run_folder("a/b").startswith("a_b-")
