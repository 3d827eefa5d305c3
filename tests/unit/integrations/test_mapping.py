"""integrations/mapping.py: Kandji records into Oomnitza fields, with rejects named by their reason."""

from __future__ import annotations

import yaml
from helpers.harness import ROOT

from kandji_oomnitza.integrations.config import Integration
from kandji_oomnitza.integrations.mapping import apply_mappings, dig, source_frame, to_oomnitza
from kandji_oomnitza.integrations.steps import source_paths

DATA = yaml.safe_load((ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml").read_text())
ASSETS = Integration.model_validate(DATA)


def device(serial, **more):
    return {"device_id": f"id-{serial or 'none'}", "device_name": f"Mac {serial}", "serial_number": serial,
            "platform": "Mac", "model": "MacBook Pro", "user": "", **more}  # fmt: skip


def test_dig_follows_dot_paths_and_lists():
    record = {"user": {"email": "a@x"}, "details": {"network": [{"mac": "AA"}]}}
    assert dig(record, "user.email") == "a@x" and dig(record, "details.missing.key") is None


def test_records_are_mapped_and_an_empty_or_duplicate_sync_key_is_rejected_with_its_reason():
    frame = source_frame(
        [device("C02A", user={"email": "ann@x.com"}), device(""), device("C02B"), device("C02B")],
        source_paths(ASSETS),
        id_path="device_id",
        label_path="device_name",
    )
    mapped = apply_mappings(frame, ASSETS, "2026-11-28T10:00:00Z")
    records = list(to_oomnitza(mapped.records, ASSETS))
    assert [r["serial_number"] for r in records] == ["C02A"]
    assert (
        records[0]["assigned_to"] == "ann@x.com"
        and records[0]["kandji_connector_sync_time"] == "2026-11-28T10:00:00Z"
    )
    assert "assigned_to" not in {k for r in records[1:] for k in r}  # an unassigned device sends no blank
    reasons = " | ".join(mapped.rejected["reason"])
    assert "serial_number" in reasons and "duplicate" in reasons.lower() and len(mapped.rejected) == 3
