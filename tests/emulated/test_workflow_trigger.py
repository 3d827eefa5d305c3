"""The workflow trigger's poll against the Oomnitza emulator over loopback HTTP, including what a real
Oomnitza may do that ours does not by default: refuse a filter operator, refuse the token, hold records
without an id."""

from __future__ import annotations

import asyncio

from helpers.harness import OOMNITZA_TOKEN
from helpers.workflow_runs import opened

from kandji_oomnitza.workflows.config import Trigger
from kandji_oomnitza.workflows.trigger import OomnitzaRecordsTrigger, read_records

ASSETS = [
    {
        "serial_number": "C02AAA000001",
        "status": "Lost",
        "notes": "left on a train",
        "assigned_to": "ann@example.com",
    },
    {"serial_number": "C02AAA000002", "status": "In Use", "notes": ""},
    {"serial_number": "C02AAA000003", "status": "Lost", "notes": ""},
]


def seed(oomnitza_emulator) -> list[str]:
    return oomnitza_emulator.post("records/assets", ASSETS)


def trigger(conditions, match="all") -> OomnitzaRecordsTrigger:
    spec = {"conditions": conditions, "match": match, "poll_interval": 5}
    return OomnitzaRecordsTrigger(
        workflow="kandji_workflow_test",
        trigger=spec,
        serial_field="serial_number",
        record_fields=["assigned_to"],
    )


def first_snapshot(watch: OomnitzaRecordsTrigger) -> dict:
    async def one():
        stream = type(watch).open_shared_stream(watch.serialize()[1])
        snapshot = await anext(stream)
        await stream.aclose()
        return snapshot

    return asyncio.run(one())


def test_one_filtered_read_and_the_conditions_rechecked(oomnitza_emulator):
    ids = seed(oomnitza_emulator)
    oomnitza_emulator.delete("requests")
    watch = trigger([{"field": "status", "equals": "Lost"}, {"field": "notes", "not_empty": True}])
    snapshot = first_snapshot(watch)
    assert snapshot["ok"] and snapshot["warnings"] == []
    reads = [r for r in oomnitza_emulator.get("requests") if r["path"] == "/api/v3/assets"]
    assert len(reads) == 1 and reads[0]["query"]["filter"] == "status eq 'Lost' AND notes IS NOT NULL"
    matching, without_id = watch.matching(snapshot["records"])
    assert list(matching) == [ids[0]] and without_id == 0
    assert matching[ids[0]]["fields"] == {"assigned_to": "ann@example.com"}


def test_an_oomnitza_that_refuses_an_operator_is_read_in_full_with_a_warning(oomnitza_emulator):
    ids = seed(oomnitza_emulator)
    oomnitza_emulator.put("settings", {"refuse_filter_ops": ["is_not_null"]})
    watch = trigger([{"field": "status", "equals": "Lost"}, {"field": "notes", "not_empty": True}])
    snapshot = first_snapshot(watch)
    assert snapshot["ok"]
    assert (
        "refused the filter" in snapshot["warnings"][0]
        and "every assets record was read instead" in snapshot["warnings"][0]
    )
    assert list(watch.matching(snapshot["records"])[0]) == [ids[0]]


def test_any_reads_once_per_condition(oomnitza_emulator):
    ids = seed(oomnitza_emulator)
    oomnitza_emulator.delete("requests")
    watch = trigger([{"field": "notes", "not_empty": True}, {"field": "status", "in": ["Lost"]}], match="any")
    matching, _ = watch.matching(first_snapshot(watch)["records"])
    assert sorted(matching) == sorted([ids[0], ids[2]])
    filters = [
        r["query"].get("filter") for r in oomnitza_emulator.get("requests") if r["path"] == "/api/v3/assets"
    ]
    assert filters == ["notes IS NOT NULL", "status IN ['Lost']"]


def test_a_wrong_token_is_a_failed_poll_that_changes_nothing(
    oomnitza_emulator, airflow_connections, oomnitza_process
):
    seed(oomnitza_emulator)
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        password="not-" + OOMNITZA_TOKEN,
        extra={"backoff_seconds": 0.01},
    )
    watch = trigger([{"field": "status", "equals": "Lost"}])
    snapshot = first_snapshot(watch)
    assert not snapshot["ok"] and "401" in snapshot["error"]
    assert "not-" + OOMNITZA_TOKEN not in snapshot["error"]
    assert asyncio.run(watch._advance(snapshot)) == []
    assert watch.store.values["last_poll"]["ok"] is False and "state" not in watch.store.values


def test_read_records_pages_through_many_matches(oomnitza_emulator):
    oomnitza_emulator.post(
        "records/assets", [{"serial_number": f"C02B{i:08d}", "status": "Lost"} for i in range(1203)]
    )
    records, warnings = read_records(
        "oomnitza_default",
        "assets",
        Trigger.model_validate({"conditions": [{"field": "status", "equals": "Lost"}]}).server_filters(),
    )
    assert len(records) == 1203 and warnings == []


def test_a_token_without_asset_read_permission_names_it_and_changes_nothing(oomnitza_emulator):
    seed(oomnitza_emulator)
    oomnitza_emulator.put("permissions", {OOMNITZA_TOKEN: ["assets.read"]})
    try:
        watch = trigger([{"field": "status", "equals": "Lost"}])
        snapshot = first_snapshot(watch)
    finally:
        oomnitza_emulator.put("permissions", {})
    assert not snapshot["ok"] and "403" in snapshot["error"]
    assert asyncio.run(watch._advance(snapshot)) == [] and "state" not in watch.store.values


def test_empty_or_short_answers_are_warnings_and_only_a_confirmed_departure_leaves(oomnitza_emulator):
    """Oomnitza answering 200 [] for a few polls (a hiccup, a permission change), or a listing that drops a
    record that still matches, makes nobody leave the condition, so nobody "enters" again when the
    answers come back; a record that really stopped matching (read again by id) leaves and re-enters."""
    ids = seed(oomnitza_emulator)  # ids[0] and ids[2] are Lost
    watch = trigger([{"field": "status", "equals": "Lost"}])
    clock = iter(range(1, 100))

    def poll() -> list:
        records, warnings = read_records("oomnitza_default", "assets", watch.spec.server_filters())
        return asyncio.run(
            watch._advance({"ok": True, "records": records, "warnings": warnings, "at": float(next(clock))})
        )

    def keys(events: list) -> list[str]:
        return [entry["key"] for event in events for entry in event["entries"]]

    assert poll() == []  # the baseline: ids[0] and ids[2] already match
    oomnitza_emulator.post(f"assets/{ids[1]}", {"status": "Lost"})
    assert keys(poll()) == [f"{ids[1]}#1"]
    listing = "^/api/v3/assets$"
    oomnitza_emulator.faults(
        scripted=[{"kind": "status", "status": 200, "body": [], "path": listing, "times": 3}]
    )
    assert [poll() for _ in range(3)] == [[], [], []]
    assert poll() == [], "an empty answer must not make every matching record enter again"
    only_first = [
        a for a in oomnitza_emulator.get("state")["records"]["assets"].values() if a["equipment_id"] == ids[0]
    ]
    oomnitza_emulator.faults(
        scripted=[{"kind": "status", "status": 200, "body": only_first, "path": listing, "times": 3}]
    )
    oomnitza_emulator.delete("requests")
    assert [poll() for _ in range(3)] == [[], [], []]
    read_again = {r["path"] for r in oomnitza_emulator.get("requests") if r["path"] != "/api/v3/assets"}
    assert read_again == {f"/api/v3/assets/{ids[1]}", f"/api/v3/assets/{ids[2]}"}
    assert poll() == [], "a short listing must not make the records it dropped enter again"
    oomnitza_emulator.post(f"assets/{ids[2]}", {"status": "In Use"})
    assert poll() == [] and poll() == []
    assert not opened(watch.store.values["state"])["records"][ids[2]]["inside"]  # confirmed gone: it left
    oomnitza_emulator.post(f"assets/{ids[2]}", {"status": "Lost"})
    assert keys(poll()) == [f"{ids[2]}#1"]
