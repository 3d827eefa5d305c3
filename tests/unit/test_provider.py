"""provider.py: what the package tells Airflow it provides."""

from __future__ import annotations

import importlib

import kandji_oomnitza
from kandji_oomnitza.integrations.config import INTEGRATIONS
from kandji_oomnitza.provider import get_provider_info
from kandji_oomnitza.workflows.config import WORKFLOWS


def test_the_provider_lists_both_connection_types_and_their_hooks():
    info = get_provider_info()
    types = {c["connection-type"]: c["hook-class-name"] for c in info["connection-types"]}
    assert types == {
        "kandji": "kandji_oomnitza.hooks.kandji.KandjiHook",
        "oomnitza": "kandji_oomnitza.hooks.oomnitza.OomnitzaHook",
    }
    assert info["package-name"] == "kandji-oomnitza-airflow"


def test_everything_the_provider_lists_imports():
    info = get_provider_info()
    modules = [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for entry in info[key]
        for m in entry["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for link in info["extra-links"]:
        module, _, name = link.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type), link
    assert info["versions"] == [kandji_oomnitza.__version__]


def test_the_provider_config_names_every_settings_folder_option_and_the_seal_key():
    options = get_provider_info()["config"]["kandji_oomnitza"]["options"]
    assert set(options) == {
        INTEGRATIONS.config_option,
        WORKFLOWS.config_option,
        "asset_details_mapping",
        "state_seal_key",
    }
    # Airflow hides a sensitive option in its configuration API and UI, whatever [api] expose_config says.
    assert options["state_seal_key"]["sensitive"] is True
    assert not any(o.get("sensitive") for name, o in options.items() if name != "state_seal_key")
