"""ui/page/overview.py: what the Integrations page shows of a run."""

from __future__ import annotations

from types import SimpleNamespace


def finished_run(run_id: str, state: str = "success", run_type: str = "manual") -> SimpleNamespace:
    """A finished run, as the page reads one from the metadata DB."""
    return SimpleNamespace(
        run_id=run_id,
        state=state,
        run_type=run_type,
        conf={},
        queued_at=None,
        start_date=None,
        end_date=None,
    )


def test_the_page_counts_flagged_records_apart_and_a_dry_run_as_would_flag():
    from kandji_oomnitza.ui.page.overview import run_summary

    run = finished_run("manual__1")
    base = {"kandji_records": 10, "not_loaded": 0, "back_in_kandji": 1, "when_missing": "sent: ..."}
    real = run_summary("d", run, {**base, "flagged_as_missing": 3, "would_flag_as_missing": 0}, True)
    assert (real.flagged_as_missing, real.back_in_kandji, real.not_loaded) == (3, 1, 0)
    dry = run_summary(
        "d", run, {**base, "dry_run": True, "flagged_as_missing": 0, "would_flag_as_missing": 4}, True
    )
    assert dry.flagged_as_missing == 4 and dry.dry_run


def test_a_tripped_safeguard_and_who_lifted_it_reach_the_page():
    from kandji_oomnitza.ui.page.overview import run_summary

    run = finished_run("scheduled__1", state="failed", run_type="scheduled")
    sentence = "Kandji listed 64 devices, and 576 were not in it: flagging them was stopped by the safeguard"
    stopped = run_summary("d", run, {"kandji_records": 64, "safeguard": sentence}, True)
    assert stopped.safeguard == sentence and stopped.safeguard_confirmed_by is None
    lifted = run_summary("d", run, {"kandji_records": 64, "safeguard_confirmed_by": "admin"}, True)
    assert lifted.safeguard is None and lifted.safeguard_confirmed_by == "admin"
    assert run_summary("d", run, {"kandji_records": 64}, True).safeguard is None


def test_a_skipped_run_says_why_and_a_dry_run_carries_its_preview():
    from kandji_oomnitza.ui.page.overview import run_summary

    run = finished_run("backfill__1", run_type="backfill")
    skipped = run_summary(
        "d", run, None, False, skipped_reason="Skipped: a newer run of this integration exists"
    )
    assert skipped.skipped_reason.startswith("Skipped: a newer run") and not skipped.has_summary
    preview = [{"serial_number": "C02X", "APPLICATIONS": "12 apps", "n": 3}] * 12
    dry = run_summary(
        "d", run, {"dry_run": True, "would_send": 12, "preview": preview, "dry_run_payloads": "file:///x.jsonl",
                   "rejected_before_load": 2}, True,
    )  # fmt: skip
    assert len(dry.preview) == 10 and dry.preview[0] == {
        "serial_number": "C02X",
        "APPLICATIONS": "12 apps",
        "n": "3",
    }
    assert dry.dry_run_payloads == "file:///x.jsonl" and dry.rejected_before_load == 2
    assert run_summary("d", run, {"preview": "not a list"}, True).preview is None


def test_the_error_log_is_offered_only_when_it_lists_a_record():
    from kandji_oomnitza.integrations.handover import RunSummary
    from kandji_oomnitza.ui.page.app import _lists_records

    def lists(xcom):
        return _lists_records(RunSummary.read(xcom))

    assert lists({"error_log": "file:///r/errors.csv", "error_log_rows": 2})
    assert not lists({"error_log": "file:///r/errors.csv", "error_log_rows": 0})  # a header only
    assert lists({"error_log": "file:///r/errors.csv"})  # a summary from before the count
    assert not lists({"error_log": None}) and not lists(None)
    assert not lists({"error_log": "file:///r/errors.csv", "error_log_rows": "many"})  # edited by hand


def test_a_summary_that_is_not_one_shows_as_none_never_as_an_error():
    """A summary XCom edited through the REST API (role user may) is not read as a run summary."""
    from kandji_oomnitza.ui.page.overview import run_summary

    run = finished_run("r")
    row = run_summary("d", run, {"kandji_records": "lots", "added": [1]}, False)
    assert row.has_summary is False and row.kandji_records is None and row.counts is None
    row = run_summary("d", run, {"kandji_records": 3, "added": 2}, False)
    assert row.has_summary and row.kandji_records == 3 and row.counts.added == 2
