"""hooks/oomnitza_protocol.py: the connector protocol's preference flags, and which records a run log's
messages name (one parser for every place that asks)."""

from __future__ import annotations

import pytest

from kandji_oomnitza.hooks.oomnitza_protocol import Preference, named_in, named_records


@pytest.mark.parametrize(
    ("preference", "flags"),
    [
        (Preference.CREATE_AND_UPDATE, {"insert_only": False, "update_only": False}),
        (Preference.CREATE_ONLY, {"insert_only": True, "update_only": False}),
        (Preference.UPDATE_ONLY, {"insert_only": False, "update_only": True}),
    ],
)
def test_each_preference_sends_its_flags(preference, flags):
    assert preference.flags == flags


def test_messages_name_records_by_their_quoted_sync_key_values():
    assert named_in("Asset 'C02X' failed: model \"M1\" unknown") == ["C02X", "M1"]
    assert named_in("no quotes here") == []
    messages = {"failed": ["'A' bad", "'B' bad"], "skipped": ['"C" not found'], "updated": ["'D'"]}
    assert named_records(messages, ("failed", "skipped")) == {
        "A": ("failed", "'A' bad"),
        "B": ("failed", "'B' bad"),
        "C": ("skipped", '"C" not found'),
    }
    assert set(named_records(messages, tuple(messages))) == {"A", "B", "C", "D"}
