"""hooks/oomnitza.py: a run log read tolerantly, permissions named as Oomnitza's roles say them, and the
bulk protocol's body."""

from __future__ import annotations

from kandji_oomnitza.hooks.oomnitza import ConnectorRun, OomnitzaHook, Preference, RunOutcome, permission_for


def test_a_run_log_is_read_whatever_it_leaves_out():
    outcome = RunOutcome.from_run_log(
        "p", {"status": "finished", "objects": {"added": "3", "failed": 1}, "logs": {"failed": ["'X' bad"]}}
    )
    assert outcome.counts == {"added": 3, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1}
    assert outcome.total == 4 and not outcome.processing and outcome.messages["failed"] == ["'X' bad"]
    odd = RunOutcome.from_run_log("p", {"objects": "nope", "logs": None})
    assert odd.total == 0 and odd.processing  # no status yet: still processing


def test_permissions_are_named_for_each_endpoint():
    assert permission_for("POST api/v3/bulk") == "connector uploads (the connector API: bulk, finalize)"
    assert permission_for("GET api/v3/assets/meta") == "reading the data model (field metadata)"
    assert permission_for("GET api/v3/users") == "reading and editing users"
    assert permission_for("GET api/v3/connector_run_logs/connectors/p") == "reading connector run logs"


def test_the_bulk_body_carries_the_run_its_records_and_the_preferences_flags():
    run = ConnectorRun(
        hook=None, data_type="assets", sync_field=("serial_number",), preference=Preference.UPDATE_ONLY,
        connector_name="c", test_run=False, batch_size=100, portion="p1",
    )  # fmt: skip
    body = OomnitzaHook.bulk_payload(None, run, [{"serial_number": "S"}], error="empty sync key")
    assert body["portion"] == "p1" and body["sync_field"] == ["serial_number"] and body["update_only"]
    assert not body["insert_only"] and body["error"] == "empty sync key" and body["data_type"] == "assets"
