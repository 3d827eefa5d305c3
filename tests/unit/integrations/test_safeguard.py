"""integrations/safeguard.py: when flagging stops (too many, or a listing that shrank), what the sentence
says, and how the last listing's size is read back (never trusted when it cannot be)."""

from __future__ import annotations

import json

import yaml
from airflow.sdk import ObjectStoragePath
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration, MissingSettings
from kandji_oomnitza.integrations.handover import Listing
from kandji_oomnitza.integrations.safeguard import (
    LISTING_SHRANK,
    MAX_FLAGGED,
    PreviousListing,
    listing_shrank,
    read_previous,
    too_many,
    write_listing,
)

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
WHEN_MISSING = {"after_days": 1, "set": {"status": "Not in Kandji"}}


def integration(**when_missing) -> MissingSettings:
    """The settings flagging reads, of the shipped devices file with ``when_missing``."""
    settings = Integration.model_validate(
        {**DATA, "when_missing": {**WHEN_MISSING, **when_missing}}
    ).missing_settings
    assert settings is not None
    return settings


def test_the_issues_example_stops_with_its_sentence():
    """Kandji listed 64 of 640: 576 would be flagged, over 5% of 640 (32)."""
    stop = too_many(integration(), listed=64, to_flag=576, held=640)
    assert stop is not None and stop.kind == MAX_FLAGGED and stop.fails_the_run
    assert stop.message.startswith(
        "Kandji listed 64 devices, and 576 of the 640 Oomnitza holds with a Kandji id were not in it: "
        "flagging them was stopped by the safeguard (max 32, max_flagged 5%)."
    )
    assert stop.message.endswith(
        "Nothing is flagged unless a person confirms it under Airflow's Required Actions."
    )


def test_up_to_the_limit_is_flagged():
    assert too_many(integration(), listed=600, to_flag=32, held=640) is None
    assert too_many(integration(), listed=40, to_flag=10, held=50) is None  # the floor of 10
    assert too_many(integration(), listed=40, to_flag=11, held=50) is not None
    assert too_many(integration(max_flagged=0), listed=5, to_flag=1, held=None) is not None


def test_a_listing_that_shrank_more_than_the_setting_stops_flagging_without_failing():
    previous = PreviousListing(listed=640, read_at="2026-11-27T02:00:00Z")
    stop = listing_shrank(integration(), Listing(listed=64), previous)
    assert stop is not None and stop.kind == LISTING_SHRANK and not stop.fails_the_run
    assert "Kandji listed 64 devices, 576 fewer (90%) than at the last run that flagged (640" in stop.message
    assert listing_shrank(integration(), Listing(listed=520), previous) is None  # 19% < 20%
    assert listing_shrank(integration(max_listing_shrink="10%"), Listing(listed=520), previous) is not None
    assert listing_shrank(integration(), Listing(listed=700), previous) is None
    assert listing_shrank(integration(), Listing(listed=1), None) is None  # the first run: nothing to compare


def test_the_last_listing_is_written_and_read_back(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}") / "kandji_users" / "safeguard" / "listing.json"
    assert read_previous(path, "2026-11-28T00:00:00Z") == (None, None)
    write_listing(path, Listing(listed=300), "2026-11-27T00:00:00Z")
    assert read_previous(path, "2026-11-28T00:00:00Z") == (PreviousListing(300, "2026-11-27T00:00:00Z"), None)


def test_an_implausible_last_listing_is_not_used_and_says_why(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}") / "listing.json"
    for content, why in [
        ("{not json", "could not be read"),
        (json.dumps({"listed": "300", "read_at": "2026-11-27T00:00:00Z"}), "is not {listed"),
        (json.dumps({"listed": True, "read_at": "2026-11-27T00:00:00Z"}), "is not {listed"),
        (json.dumps({"listed": 300}), "is not {listed"),
        (json.dumps({"listed": 300, "read_at": "2027-01-01T00:00:00Z"}), "is in the future"),
    ]:
        (tmp_path / "listing.json").write_text(content)
        previous, problem = read_previous(path, "2026-11-28T00:00:00Z")
        assert previous is None and why in problem, (content, problem)
