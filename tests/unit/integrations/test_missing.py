"""integrations/missing.py: when a record counts as gone from Kandji, and what a run flags."""

from __future__ import annotations

from datetime import UTC, datetime

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
    assert cutoff_of("2026-11-27T10:00:00Z", 7) == "2026-11-20T10:00:00Z"
    assert cutoff_of("2026-11-27T10:00:00Z", 0.5) == "2026-11-26T22:00:00Z"


def test_listing_is_complete_unless_kandji_counts_more_than_it_listed():
    assert listing_completeness(ASSETS, 300, None).complete  # no total given: every page was read
    assert listing_completeness(ASSETS, 301, 300).complete  # a device added during the walk
    partial = listing_completeness(ASSETS, 297, 300)
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
        "after 7 day(s) unseen, set {'status': 'Not in Kandji'} once (never deleted); only after a complete Kandji listing"
    )
