"""ui/page/workflows.py: a workflow run's outcomes as the page lists them."""

from __future__ import annotations

from kandji_oomnitza.ui.page.workflows import _outcomes


def test_outcomes_are_one_line_per_record_and_none_when_hidden():
    summary = {
        "records": [
            {"serial_number": "C02X", "outcome": "sent (Kandji Lock Device)"},
            {"record_id": "e2", "outcome": "forged"},
        ]
    }
    assert _outcomes(summary) == ["C02X: sent (Kandji Lock Device)", "e2: forged"]
    assert _outcomes(None) is None and _outcomes({"records": []}) == []
