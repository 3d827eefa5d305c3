"""integrations/dag.py: a DAG per valid file, a broken file breaks only itself, schedules."""

from __future__ import annotations

from helpers.harness import ROOT
from helpers.integration_files import DEFAULT_ASSETS, changed, write

from kandji_oomnitza.integrations.config import load_integration


def test_a_bad_file_breaks_only_its_own_dag_and_is_an_import_error_naming_file_field_and_fix(
    tmp_path, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "integrations"
    folder.mkdir()
    write(folder, DEFAULT_ASSETS, name="good.yaml")
    write(folder, changed(preference="sometimes"), name="broken.yaml")
    write(folder, {**DEFAULT_ASSETS, "sync_ky": ["serial_number"]}, name="typo.yaml")
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(folder))
    shipped = ROOT / "include" / "integrations" / "kandji_devices_and_software.yaml"
    monkeypatch.setenv("KANDJI_OOMNITZA_ASSET_DETAILS_MAPPING", str(shipped))  # not in this folder
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert "good" in bag.dag_ids and "broken" not in bag.dag_ids and "typo" not in bag.dag_ids
    assert any(d.startswith("kandji_preset_") for d in bag.dag_ids)  # the other DAG files are untouched
    (location,) = bag.import_errors
    assert location.endswith("kandji_integration_file_errors.py")
    error = bag.import_errors[location]
    assert "broken.yaml" in error and "preference" in error and "create_and_update" in error
    assert "typo.yaml" in error and "sync_ky: unknown key; remove it or check its spelling" in error
    assert "good.yaml" not in error and "every other integration runs as usual" in error


def test_adding_a_file_adds_a_dag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "integrations"
    folder.mkdir()
    for name in ("kandji_macs_only", "kandji_lab_devices"):
        write(folder, {**DEFAULT_ASSETS, "name": name.replace("_", " ").title()}, name=f"{name}.yaml")
    monkeypatch.setenv("KANDJI_OOMNITZA_INTEGRATIONS_DIR", str(folder))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "kandji_integrations.py"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"kandji_macs_only", "kandji_lab_devices"}
    assert bag.dags["kandji_lab_devices"].dag_display_name == "Kandji Lab Devices"


def test_schedules(tmp_path):
    from kandji_oomnitza.integrations.dag import build_dag

    for cron, expected in (("0 2 * * 1-5", "0 2 * * 1-5"), (None, None)):
        data = {**DEFAULT_ASSETS, "schedule": {"cron": cron, "timezone": "Europe/Berlin"}}
        path = write(tmp_path, data, name="sched.yaml")
        dag = build_dag("sched", load_integration(path), path)
        if expected is None:
            assert dag.timetable is None or type(dag.timetable).__name__ == "NullTimetable"
        else:
            assert type(dag.timetable).__name__ == "CronTriggerTimetable"
            assert dag.timetable.expression == expected and str(dag.timetable.timezone) == "Europe/Berlin"
