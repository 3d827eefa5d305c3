"""The UI plugin is registered once: by the installed package's entry point, or by the plugins folder's
file where the package is not installed."""

from __future__ import annotations

import importlib.metadata
import runpy

from airflow import plugins_manager, settings
from helpers.harness import ROOT

from kandji_oomnitza.ui.plugin import KandjiOomnitzaPlugin

SHIM = ROOT / "plugins" / "kandji_oomnitza_plugin.py"


def test_the_installed_package_registers_the_plugin_by_entry_point():
    (entry,) = [
        ep for ep in importlib.metadata.entry_points(group="airflow.plugins") if ep.name == "kandji_oomnitza"
    ]
    assert entry.load() is KandjiOomnitzaPlugin


def test_the_plugins_folder_file_defines_no_plugin_where_the_package_is_installed():
    assert "KandjiOomnitzaPlugin" not in runpy.run_path(str(SHIM))


def test_the_plugins_folder_file_registers_the_plugin_where_only_the_files_were_copied(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    assert runpy.run_path(str(SHIM))["KandjiOomnitzaPlugin"] is KandjiOomnitzaPlugin


def test_airflow_loads_the_plugin_once_from_the_astro_layout(monkeypatch):
    """This repository's plugins folder and the installed package together: one plugin, no import error
    (a second registration would be Airflow's "already registered" import error)."""
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    plugins, import_errors = plugins_manager._get_plugins.__wrapped__()
    assert [p.name for p in plugins].count("kandji_oomnitza") == 1
    assert import_errors == {}, (
        "a second registration: is there a stale plugins/*.egg-info from a build in the checkout? "
        "(make clean removes it; make wheel builds without one)"
    )
    (ours,) = [p for p in plugins if p.name == "kandji_oomnitza"]
    assert [view["name"] for view in ours.external_views] == ["Integrations"]
    assert {type(link).__name__ for link in ours.operator_extra_links} == {
        "OomnitzaRecordsLink",
        "KandjiDeviceLink",
        "OomnitzaAssetLink",
    }
