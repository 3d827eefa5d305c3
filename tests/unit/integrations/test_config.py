"""integrations/config.py: the shipped integration files are valid, and every mistake names the file, the field and the fix."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers.integration_files import DEFAULT_ASSETS, FOLDER, changed, write

from kandji_oomnitza.exceptions import IntegrationFileError
from kandji_oomnitza.hooks.oomnitza_protocol import Preference
from kandji_oomnitza.integrations.config import INTEGRATIONS, load_integration
from kandji_oomnitza.settings_files import scan


def test_shipped_files_follow_the_design_contract():
    loaded = {entry.dag_id: entry.model for entry in scan(INTEGRATIONS, FOLDER)}
    assert set(loaded) == {"kandji_devices_and_software", "kandji_users"}
    assets, users = loaded["kandji_devices_and_software"], loaded["kandji_users"]
    assert assets.software_settings.enabled and assets.preference is Preference.CREATE_AND_UPDATE
    assert assets.sync_key == ["serial_number"]
    assert {t: assets.mappings[t].field for t in assets.mappings} == {
        "serial_number": "Serial Number",
        "device_name": "Device Name",
        "model": "Model",
        "assigned_to": "User",
        "kandji_device_id": "Device ID",
        "kandji_asset_tag": "Asset Tag",
        "kandji_blueprint_id": "Blueprint ID",
        "kandji_last_check_in": "Last Check-In",
        "kandji_os_version": "OS Version",
        "kandji_platform": "Platform",
        "kandji_connector_sync_time": "Connector Sync Time",
    }
    assert users.preference is Preference.UPDATE_ONLY and users.sync_key == ["email"]
    assert users.user_settings.selection.value == "user_plus_saas_user"
    assert {t: users.mappings[t].field for t in users.mappings} == {
        "email": "User Email",
        "full_name": "User Name",
        "kandji_user_id": "User ID",
        "kandji_user_is_archived": "User Is Archived",
        "kandji_connector_sync_time": "Connector Sync Time",
    }
    assert assets.schedule.cron == users.schedule.cron == "@daily"


INVALID = [
    ("unknown top-level key", changed(prefrence="create_only"), ["prefrence", "unknown key"]),
    ("bad preference", changed(preference="create_and_delete"), ["preference", "create_and_update"]),
    (
        "unknown standard field",
        changed(mappings={"serial_number": "Serial Numbr"}, sync_key=["serial_number"]),
        ["mappings.serial_number", "did you mean 'Serial Number'"],
    ),
    (
        "sync key not mapped",
        changed(sync_key=["barcode"]),
        ["sync_key", "'barcode' is not a mapped Oomnitza field"],
    ),
    ("empty sync key", changed(sync_key=[]), ["sync_key"]),
    (
        "bad cron",
        changed(schedule={"cron": "every day at 2"}),
        ["schedule.cron", "not a valid cron expression"],
    ),
    ("bad preset", changed(schedule={"cron": "@fortnightly"}), ["schedule.cron", "unknown preset"]),
    (
        "bad time zone",
        changed(schedule={"cron": "@daily", "timezone": "Mars/Olympus"}),
        ["schedule.timezone", "unknown time zone"],
    ),
    (
        "unknown converter",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "notes": {"path": "asset_tag", "converter": "dat"}}),
        ["mappings.notes.converter", "date"],
    ),
    (
        "two sources",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "notes": {"path": "asset_tag", "constant": "x"}}),
        ["mappings.notes", "exactly one source"],
    ),
    (
        "no source",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "notes": {"converter": "lower"}}),
        ["mappings.notes", "exactly one source"],
    ),
    (
        "list without converter",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "notes": {"path": ["a", "b"]}}),
        ["mappings.notes", "first_non_empty or join"],
    ),
    (
        "bad path",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "notes": {"path": "user/../email"}}),
        ["mappings.notes", "not a dot path"],
    ),
    (
        "bad field name",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "Serial-Number": "Serial Number"}),
        ["mappings.Serial-Number", "lower snake_case"],
    ),
    (
        "APPLICATIONS mapped",
        changed(mappings={**DEFAULT_ASSETS["mappings"], "APPLICATIONS": {"constant": "x"}}),
        ["mappings.APPLICATIONS", "software"],
    ),
    (
        "users option on assets",
        changed(users={"selection": "user"}),
        ["users", "only for users integrations"],
    ),
    ("wrong type", changed(type="computers"), ["type", "assets"]),
    ("batch too big", changed(load={"batch_size": 500}), ["load.batch_size", "100"]),
    ("missing name", changed(name=None), ["name", "is required"]),
    ("blank confirmer", changed(confirmers=["alice", ""]), ["confirmers", "'' is not an Airflow user id"]),
    ("unknown software route", changed(software={"route": "magic"}), ["software.route", "per_device"]),
]


@pytest.mark.parametrize(("case", "data", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_files_name_the_file_the_field_and_the_fix(tmp_path, case, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(IntegrationFileError) as excinfo:
        load_integration(path)
    message = str(excinfo.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} missing from:\n{message}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),  # the safe loader refuses code
    ],
)
def test_unreadable_files(tmp_path, text, expected):
    with pytest.raises(IntegrationFileError, match=expected):
        load_integration(write(tmp_path, text))


def test_file_name_must_make_a_dag_id(tmp_path):
    with pytest.raises(IntegrationFileError, match="file name becomes the DAG id"):
        load_integration(write(tmp_path, DEFAULT_ASSETS, name="my integration.yaml"))


GONE = {"after_days": 7, "set": {"status": "Not in Kandji"}}


DEFAULT_USERS = yaml.safe_load((FOLDER / "kandji_users.yaml").read_text())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            changed(when_missing={**GONE, "after_days": -1}),
            "when_missing.after_days: -1 is not between 0s and 3650d",
        ),
        (
            changed(when_missing={**GONE, "set": {}}),
            "when_missing.set: Dictionary should have at least 1 item",
        ),
        (changed(when_missing={"set": {"status": "x"}}), "when_missing.after_days: is required"),
        (
            changed(when_missing={**GONE, "set": {"serial_number": "gone"}}),
            "sync key, the Kandji id and Connector Sync",
        ),
        (
            changed(when_missing={**GONE, "set": {"kandji_device_id": None}}),
            "set another field (e.g. status)",
        ),
        (
            changed(when_missing={**GONE, "clear_when_seen": {"Status": None}}),
            "when_missing.clear_when_seen.Status",
        ),
        (changed(when_missing={**GONE, "after_day": 3}), "when_missing.after_day: unknown key"),
        (
            changed(
                when_missing=GONE,
                mappings={k: v for k, v in DEFAULT_ASSETS["mappings"].items() if k != "kandji_device_id"},
            ),
            "when_missing: needs the Kandji id mapped (e.g. kandji_device_id: Device ID)",
        ),
        (
            changed(
                when_missing=GONE,
                mappings={
                    k: v for k, v in DEFAULT_ASSETS["mappings"].items() if k != "kandji_connector_sync_time"
                },
            ),
            "when_missing: needs Connector Sync Time mapped",
        ),
        (
            {
                **DEFAULT_USERS,
                "users": {"skip_archived": True},
                "when_missing": {**GONE, "set": {"kandji_status": "x"}},
            },
            "when_missing: needs every Kandji user listed",
        ),
    ],
)
def test_when_missing_is_validated_at_parse_time(tmp_path, data, expected):
    with pytest.raises(IntegrationFileError) as error:
        load_integration(write(tmp_path, data))
    assert expected in str(error.value)


def test_when_missing_knows_its_fields(tmp_path):
    integration = load_integration(
        write(
            tmp_path, changed(when_missing={**GONE, "clear_when_seen": {"status": "Deployed", "notes": ""}})
        )
    )
    assert integration.kandji_id_field == "kandji_device_id"
    assert integration.sync_time_field == "kandji_connector_sync_time"
    assert integration.when_missing.fields == ["status", "notes"]
    assert load_integration(write(tmp_path, DEFAULT_ASSETS)).when_missing is None  # off by default


# -- notify, deadline and the safeguards -----------------------------------------------------------
WHEN_MISSING = {"after_days": 1, "set": {"status": "Not in Kandji"}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (changed(notify={"on_failure": []}), ["notify.on_failure", "at least 1 item"]),
        (changed(notify={"on_falure": ["it_alerts"]}), ["notify.on_falure", "unknown key"]),
        (
            changed(notify={"on_failure": ["slack://T0/B0/secret"]}),
            ["notify.on_failure.0", "connection of type apprise"],
        ),
        (changed(deadline="2h"), ["deadline", "notify.on_failure targets"]),
        (changed(deadline="5s", notify={"on_failure": ["a"]}), ["deadline", "not between 10s and 30d"]),
        (
            changed(deadline="99999999999999999999d", notify={"on_failure": ["a"]}),
            ["deadline", "not between 10s and 30d", "at most 30 days"],
        ),
        (
            changed(when_missing={**WHEN_MISSING, "after_days": float("1e400")}),
            ["when_missing.after_days", "not a finite duration"],
        ),
        (
            changed(delta={"enabled": True, "full_sync_every": "99999999999999999999d"}),
            ["delta.full_sync_every", "not between 1h and 365d"],
        ),
        (changed(deadline="soon", notify={"on_failure": ["a"]}), ["deadline", "not a duration"]),
        (changed(notify={"on_safeguard": ["a"]}), ["notify.on_safeguard", "when_missing, which is off"]),
        (
            changed(when_missing={**WHEN_MISSING, "max_flagged": "150%"}),
            ["when_missing.max_flagged", "150%"],
        ),
        (
            changed(when_missing={**WHEN_MISSING, "max_flagged": -1}),
            ["when_missing.max_flagged"],
        ),
        (
            changed(when_missing={**WHEN_MISSING, "max_listing_shrink": "lots"}),
            ["when_missing.max_listing_shrink"],
        ),
    ],
    ids=[
        "empty list",
        "unknown event",
        "credentials in yaml",
        "deadline without target",
        "tiny deadline",
        "endless deadline",
        "infinite after_days",
        "endless full sync interval",
        "bad deadline",
        "safeguard without when_missing",
        "percent over 100",
        "negative",
        "not a percentage",
    ],
)
def test_notify_deadline_and_safeguard_mistakes_name_the_field(tmp_path, data, expected):
    with pytest.raises(IntegrationFileError) as caught:
        load_integration(write(tmp_path, data))
    for part in expected:
        assert part in str(caught.value), str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("name", ["kandji_devices_and_software.yaml", "kandji_users.yaml"])
def test_the_shipped_commented_notify_and_safeguard_blocks_are_valid_when_uncommented(tmp_path, name):
    """The shipped files show notify, deadline and the safeguard keys as comments: uncommented as a user
    would, they load (so the example a user copies works)."""
    block = re.compile(
        r"# ((when_missing|notify|deadline):.*|  (after_days|set|clear_when_seen|max_\w+|on_\w+):.*)"
    )
    uncommented = [
        line[2:] if block.fullmatch(line) else line for line in (FOLDER / name).read_text().splitlines()
    ]
    loaded = load_integration(write(tmp_path, "\n".join(uncommented) + "\n", name))
    assert loaded.notify is not None and loaded.notify.on_failure == ["it_alerts"]
    assert loaded.deadline is not None and loaded.deadline.total_seconds() == 7200
    assert loaded.when_missing is not None


def test_max_flagged_is_a_number_or_a_percentage_with_a_floor(tmp_path):
    percent = load_integration(write(tmp_path, changed(when_missing=WHEN_MISSING))).when_missing
    assert str(percent.max_flagged) == "5%" and str(percent.max_listing_shrink) == "20%"  # parsed once
    assert percent.model_dump(mode="json")["max_flagged"] == "5%"  # dumped as written
    assert percent.flagging_limit(640) == 32  # 5% of 640
    assert percent.flagging_limit(50) == 10  # the floor
    number = load_integration(write(tmp_path, changed(when_missing={**WHEN_MISSING, "max_flagged": 3})))
    assert number.when_missing.flagging_limit(10_000) == 3
