"""settings_files.py: every settings file read safely (bounded, no aliases, regular files only), listed, scanned and reported the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.harness import KANDJI_TOKEN, OOMNITZA_TOKEN, ROOT

from kandji_oomnitza.exceptions import IntegrationFileError
from kandji_oomnitza.integrations.config import INTEGRATIONS, load_integration
from kandji_oomnitza.settings_files import settings_files

# -- bounded parsing -----------------------------------------------------------------------------
BOMB = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
name: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
type: assets
sync_key: serial_number
mappings: {serial_number: Serial Number}
"""


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    with pytest.raises(IntegrationFileError) as excinfo:
        load_integration(path)
    message = str(excinfo.value)
    assert "aliases (*name) are not allowed" in message and "bomb.yaml" in message
    assert len(message) < 1000


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\\n" + "# padding\\n" * 40_000)
    with pytest.raises(IntegrationFileError, match="more than the 262144"):
        load_integration(path)


def test_validation_messages_quote_only_a_short_prefix_of_the_input(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(
        "name: x\ntype: assets\nsync_key: serial_number\npreference: " + "z" * 50_000 + "\n"
        "mappings: {serial_number: Serial Number}\n"
    )
    with pytest.raises(IntegrationFileError) as excinfo:
        load_integration(path)
    assert "preference" in str(excinfo.value) and len(str(excinfo.value)) < 1000


def test_the_shipped_files_and_docs_hold_no_real_token():
    for path in [*ROOT.glob("include/**/*.yaml"), ROOT / "airflow_settings.yaml", ROOT / "README.md"]:
        text = path.read_text()
        assert KANDJI_TOKEN not in text and OOMNITZA_TOKEN not in text
        assert "Bearer ey" not in text, path  # no pasted JWT-like token


def test_odd_entries_in_a_settings_folder_are_their_own_errors_and_break_nothing_else(tmp_path, monkeypatch):
    """A directory named like a settings file, and a link to a device that never ends: each is named as
    its own error in Airflow's import errors, and every valid file still becomes its DAG."""
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    kept = {
        "integrations": ["kandji_users.yaml", "kandji_devices_and_software.yaml"],
        "workflows": ["lost_device_lock.yaml"],
    }
    for kind, keep in kept.items():
        folder = tmp_path / kind
        folder.mkdir()
        for name in keep:
            shutil.copy(ROOT / "include" / kind / name, folder / name)
        (folder / "oops.yaml").mkdir()
        (folder / "zero.yaml").symlink_to("/dev/zero")
        monkeypatch.setenv(f"KANDJI_OOMNITZA_{kind.upper()}_DIR", str(folder))
    bag = DagBag(dag_folder=str(ROOT / "dags"), safe_mode=False)
    assert {"kandji_users", "kandji_workflow_lost_device_lock"} <= set(bag.dags)
    assert "kandji_workflow_zero" not in bag.dags and "oops" not in bag.dags
    errors = {Path(path).name: text for path, text in bag.import_errors.items()}
    assert set(errors) == {"kandji_integration_file_errors.py", "kandji_workflow_file_errors.py"}
    for text in errors.values():
        assert (
            "2 " in text
            and "oops.yaml: not a regular file" in text
            and "zero.yaml: not a regular file" in text
        )


def test_integration_files_listing_ignores_underscored_and_other_files(tmp_path):
    for name in ("a.yaml", "b.yml", "_draft.yaml", "notes.txt"):
        (tmp_path / name).write_text("x: 1")
    assert [p.name for p in settings_files(tmp_path)] == ["a.yaml", "b.yml"]


def test_one_duration_grammar_for_every_file():
    from kandji_oomnitza.settings_files import parse_duration

    assert [parse_duration(v) for v in ("30s", "5m", "12h", "7d", " 1.5h ", 90)] == [
        30,
        300,
        43200,
        604800,
        5400,
        90,
    ]
    for bad in ("7 days", "1w", "", "-3d", True):
        with pytest.raises(ValueError, match="is not a duration like"):
            parse_duration(bad)


def test_the_kind_of_a_named_file_is_told_by_its_folder_else_its_content(tmp_path):
    from kandji_oomnitza.check import KINDS
    from kandji_oomnitza.settings_files import kind_of

    (tmp_path / "typo.yaml").write_text("trigger: {}\nenabled: true\n")
    assert kind_of(tmp_path / "typo.yaml", KINDS).noun == "workflow"
    assert kind_of(ROOT / "include" / "integrations" / "kandji_users.yaml", KINDS).noun == "integration"


def test_a_settings_folder_comes_from_its_variable_else_airflows_option_else_beside_the_dags_folder(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(INTEGRATIONS.folder_env, raising=False)
    monkeypatch.delenv("AIRFLOW__KANDJI_OOMNITZA__INTEGRATIONS_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "deployment" / "dags"))
    assert INTEGRATIONS.folder() == tmp_path / "deployment" / "include" / "integrations"
    monkeypatch.setenv("AIRFLOW__KANDJI_OOMNITZA__INTEGRATIONS_FOLDER", str(tmp_path / "from-config"))
    assert INTEGRATIONS.folder() == tmp_path / "from-config"
    monkeypatch.setenv(INTEGRATIONS.folder_env, str(tmp_path / "from-variable"))
    assert INTEGRATIONS.folder() == tmp_path / "from-variable"


def test_get_asset_details_mapping_comes_from_its_variable_else_airflows_option(tmp_path, monkeypatch):
    from kandji_oomnitza.integrations.asset_details import SETTING, mapping_file

    monkeypatch.delenv(SETTING, raising=False)
    monkeypatch.setenv(INTEGRATIONS.folder_env, str(tmp_path))
    assert mapping_file() == tmp_path / "kandji_devices_and_software.yaml"
    monkeypatch.setenv("AIRFLOW__KANDJI_OOMNITZA__ASSET_DETAILS_MAPPING", "laptops.yaml")
    assert mapping_file() == tmp_path / "laptops.yaml"
    monkeypatch.setenv(SETTING, "/elsewhere/desktops.yaml")
    assert mapping_file() == Path("/elsewhere/desktops.yaml")


def test_an_error_in_a_sandbox_copy_names_the_file_the_person_edits(tmp_path):
    """`make run` runs switched-on copies of the shipped workflow files, marked on their last line: an
    error names the source (with its line numbers unchanged) and says the copy is what runs."""
    from kandji_oomnitza.exceptions import WorkflowFileError
    from kandji_oomnitza.workflows.config import load_workflow

    source = tmp_path / "include" / "lost.yaml"
    source.parent.mkdir()
    source.write_text("name: x\nenabled: true\n  bad: indentation\n")
    copy = tmp_path / "sandbox" / "lost.yaml"
    copy.parent.mkdir()
    copy.write_text(source.read_text() + f"# kandji-oomnitza sandbox copy of: {source}\n")
    with pytest.raises(WorkflowFileError) as broken:
        load_workflow(copy)
    message = str(broken.value)
    assert message.startswith(f"Invalid workflow file {source} (the sandbox runs its copy {copy}")
    assert "line 3" in message, message  # the source's own line
    copy.write_text(
        "name: x\nenabled: true\nunknown_key: 1\n" + f"# kandji-oomnitza sandbox copy of: {source}\n"
    )
    with pytest.raises(WorkflowFileError, match=f"Invalid workflow file {source} ") as invalid:
        load_workflow(copy)
    assert "unknown_key: unknown key" in str(invalid.value)
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: x\n")
    with pytest.raises(WorkflowFileError, match=f"Invalid workflow file {plain}:"):
        load_workflow(plain)


def test_a_file_whose_dag_cannot_be_built_is_its_own_error_and_every_other_file_keeps_its_dag(tmp_path):
    import shutil

    from kandji_oomnitza.exceptions import IntegrationFileError
    from kandji_oomnitza.settings_files import build_each, raise_for_invalid_files, scan

    for name in ("kandji_users", "kandji_devices_and_software"):
        shutil.copy(ROOT / "include" / "integrations" / f"{name}.yaml", tmp_path / f"{name}.yaml")

    def build(entry, register=True):
        if entry.dag_id == "kandji_users":
            raise OverflowError("date value out of range")
        return f"DAG {entry.dag_id}"

    dags, entries = build_each(INTEGRATIONS, scan(INTEGRATIONS, tmp_path), build)
    assert dags == {"kandji_devices_and_software": "DAG kandji_devices_and_software"}
    (failed,) = [e for e in entries if e.error]
    assert (
        failed.dag_id == "kandji_users"
        and "could not be built (OverflowError: date value out of range)" in failed.error
    )
    with pytest.raises(
        IntegrationFileError, match=r"(?s)^1 integration file.*kandji_users\.yaml: it validates, but its DAG"
    ):
        raise_for_invalid_files(INTEGRATIONS, tmp_path, build=build)


@pytest.mark.parametrize("kind", ["integration", "workflow"])
def test_a_key_written_twice_is_refused_naming_both_lines(kind, tmp_path):
    from kandji_oomnitza.exceptions import SettingsFileError
    from kandji_oomnitza.integrations.config import load_integration
    from kandji_oomnitza.workflows.config import load_workflow

    source = {
        "integration": ROOT / "include" / "integrations" / "kandji_users.yaml",
        "workflow": ROOT / "include" / "workflows" / "lost_device_lock.yaml",
    }[kind]
    doubled = tmp_path / source.name
    text = source.read_text()
    doubled.write_text(text + "\nname: A second name\n")
    lines = text.count("\n")
    with pytest.raises(SettingsFileError) as raised:
        (load_integration if kind == "integration" else load_workflow)(doubled)
    message = str(raised.value)
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("name:"))
    assert f"key 'name' is written twice, on line {first} and on line {lines + 2}" in message


def test_integration_user_in_a_file_still_loads_with_a_warning_naming_the_file(tmp_path):
    """It never did anything: the connection's login is what run summaries show."""
    import warnings

    from kandji_oomnitza.exceptions import SettingsFileDeprecation
    from kandji_oomnitza.integrations.config import load_integration

    source = (ROOT / "include" / "integrations" / "kandji_users.yaml").read_text()
    path = tmp_path / "old_users.yaml"
    path.write_text(source + "integration_user: kandji-integration\n")
    with pytest.warns(SettingsFileDeprecation, match=r"old_users\.yaml: integration_user does nothing"):
        assert load_integration(path).name
    path.write_text(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_integration(path)  # the shipped file: no warning
