"""integrations/handover.py: what the tasks hand each other survives XCom's JSON, redacted, and reads back
typed; a task that did not finish hands over nothing."""

from __future__ import annotations

import json

from kandji_oomnitza.common.redaction import register_secret
from kandji_oomnitza.integrations.handover import DeltaSummary, ExtractStats, LoadResult, MissingResult


def test_hand_overs_round_trip_through_json_and_leave_no_secret():
    register_secret("handover-secret-77")
    result = LoadResult(
        portion="p", sent=3, failure="HTTP 500 from https://x/?token=handover-secret-77",
        delta=DeltaSummary(mode="delta", seen=5, sent=3, sent_positions=[0, 2, 4]),
    )  # fmt: skip
    stored = json.loads(json.dumps(result.to_xcom()))
    assert "handover-secret-77" not in json.dumps(stored)
    back = LoadResult.from_xcom(stored)
    assert back.sent_positions == [0, 2, 4] and back.delta.mode == "delta" and back.outcome is None
    assert LoadResult.from_xcom(None) is None and ExtractStats.from_xcom("not a dict") is None
    stats = ExtractStats.from_xcom(
        {"read_at": "t", "count": 3, "listing": {"complete": False, "why": "short"}}
    )
    assert stats.listing.why == "short" and stats.software is None
    missing = MissingResult.from_xcom({"status": "sent", "after_days": 7, "flagged": [{"kandji_id": "d1"}]})
    assert missing.flagged[0].kandji_id == "d1" and missing.cleared == []
