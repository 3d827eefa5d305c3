"""integrations/delta.py: fingerprints, what forces a full sync, and what the store keeps."""

from __future__ import annotations

import pytest
import yaml
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.delta import (
    DeltaPlan,
    fingerprint,
    full_sync_reason,
    last_seen_after,
    settings_hash,
)

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())


ASSETS = Integration.model_validate({**DATA, "delta": {"enabled": True, "full_sync_every": "7d"}})


APPS = [{"name": "Slack", "version": "4", "path": "/A"}, {"name": "Zoom", "version": "5", "path": "/B"}]


def test_fingerprint_ignores_sync_time_and_app_order_but_not_values():
    one = {"serial_number": "C1", "kandji_connector_sync_time": "2026-11-01T00:00:00Z", "APPLICATIONS": APPS}
    two = {**one, "kandji_connector_sync_time": "2026-11-27T00:00:00Z", "APPLICATIONS": APPS[::-1]}
    assert fingerprint(one, "kandji_connector_sync_time") == fingerprint(two, "kandji_connector_sync_time")
    assert fingerprint(one, "kandji_connector_sync_time") != fingerprint(
        {**one, "APPLICATIONS": APPS[:1]}, "kandji_connector_sync_time"
    )
    assert fingerprint(one, "kandji_connector_sync_time") != fingerprint(
        {**one, "device_name": "x"}, "kandji_connector_sync_time"
    )


def test_settings_that_shape_a_payload_change_the_hash_and_others_do_not():
    base = settings_hash(ASSETS)
    rescheduled = Integration.model_validate({**DATA, "delta": ASSETS.delta, "schedule": {"cron": "@hourly"}})
    remapped = Integration.model_validate(
        {**DATA, "mappings": {**DATA["mappings"], "notes": {"constant": "x"}}}
    )
    update_only = Integration.model_validate({**DATA, "preference": "update_only"})
    assert settings_hash(rescheduled) == base
    assert len({base, settings_hash(remapped), settings_hash(update_only)}) == 3


def test_full_sync_reasons():
    store = {"settings": settings_hash(ASSETS), "last_full_sync": "2026-11-25T00:00:00Z", "records": {}}
    now = "2026-11-27T00:00:00Z"
    assert full_sync_reason(ASSETS, store, None, now, forced=False) is None
    assert "asked for" in full_sync_reason(ASSETS, store, None, now, forced=True)
    assert "no fingerprints yet" in full_sync_reason(ASSETS, None, None, now, forced=False)
    assert "could not be read" in full_sync_reason(
        ASSETS, None, "the fingerprint store could not be read", now, False
    )
    assert "changed" in full_sync_reason(ASSETS, {**store, "settings": "other"}, None, now, forced=False)
    assert "older than" in full_sync_reason(ASSETS, store, None, "2026-12-02T00:00:01Z", forced=False)


def test_the_store_keeps_only_confirmed_fingerprints():
    old = {
        "settings": settings_hash(ASSETS),
        "last_full_sync": "2026-11-25T00:00:00Z",
        "records": {"a": ["fa", "2026-11-26T00:00:00Z"], "b": ["fb", "2026-11-26T00:00:00Z"],
                    "gone": ["fg", "2026-11-20T00:00:00Z"]},
    }  # fmt: skip
    plan = DeltaPlan(ASSETS, old, None, "2026-11-27T00:00:00Z")
    plan.entries = [("a", "fa"), ("b", "fb2"), ("c", "fc")]  # a unchanged; b changed; c new
    plan.sent_positions = [1, 2]
    store = plan.new_store({1}, ["a", "b", "c", "rejected"], outcome_read=True)  # c not confirmed
    assert store["records"] == {
        "a": ["fa", "2026-11-27T00:00:00Z"],
        "b": ["fb2", "2026-11-27T00:00:00Z"],
        "c": [None, "2026-11-27T00:00:00Z"],
        "rejected": [None, "2026-11-27T00:00:00Z"],
        "gone": ["fg", "2026-11-20T00:00:00Z"],
    }
    assert store["last_full_sync"] == "2026-11-25T00:00:00Z"  # a delta run is not a full sync
    assert last_seen_after(store, "2026-11-21T00:00:00Z") == {"a", "b", "c", "rejected"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("7 days", "is not a duration like '30s', '5m', '12h' or '7d'"),
        ("1w", "is not a duration like"),
        ("", "is not a duration like"),
        ("-3d", "is not a duration like"),
        ("0d", "a full sync at most every hour"),
        ("30m", "a full sync at most every hour"),
    ],
)
def test_full_sync_every_is_a_duration_of_an_hour_or_more(value, problem):
    with pytest.raises(ValueError, match=problem):
        Integration.model_validate({**DATA, "delta": {"enabled": True, "full_sync_every": value}})
    assert (
        Integration.model_validate({**DATA, "delta": {"full_sync_every": "36h"}}).delta.full_sync_every.days
        == 1
    )


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ([], "unexpected shape"),
        ({"records": []}, "unexpected shape"),
        ({"records": {}, "last_full_sync": "2026-11-28 10:00"}, "is not a time"),
        ({"records": {}, "last_full_sync": 1764324000}, "is not a time"),
        ({"records": {}, "last_full_sync": "2026-12-28T10:00:00Z"}, "in the future"),
        ({"records": {"d1": ["abc"]}}, "is not [fingerprint, time seen]"),
        ({"records": {"d1": [1, "2026-11-27T00:00:00Z"]}}, "is not [fingerprint, time seen]"),
        ({"records": {"d1": ["abc", "yesterday"]}}, "is not [fingerprint, time seen]"),
        ({"records": {"d1": ["abc", "2027-01-01T00:00:00Z"]}}, "seen in the future"),
        (
            {"records": {"d1": ["abc", "2026-11-28T10:00:30Z"]}, "last_full_sync": "2026-11-28T10:00:30Z"},
            None,
        ),
        ({"records": {"d1": [None, "2026-11-27T00:00:00Z"]}, "last_full_sync": None}, None),
    ],
)
def test_a_store_is_used_only_when_its_shape_and_times_are_plausible(store, problem):
    from kandji_oomnitza.integrations.delta import store_problem

    found = store_problem(store, "2026-11-28T10:00:00Z")
    assert (found is None) if problem is None else (problem in found), found
