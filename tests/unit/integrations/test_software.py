"""integrations/software.py: the long categorical software frame, and which route speaks for which device."""

from __future__ import annotations

import pandas as pd

from kandji_oomnitza.integrations import software
from kandji_oomnitza.integrations.software import Applications, SoftwareResult


def apple_app(name, version, path=None):
    return {"app_name": name, "version": version, "path": path}


def test_a_per_device_answer_speaks_for_its_device_even_when_empty():
    result = SoftwareResult(route="per_device")
    result.add("mac", [apple_app("Slack", "4.1", "/Applications/Slack.app"), apple_app("Xcode", 15)])
    result.add("empty-mac", [])
    result.add("pc", [{"display_name": "7-Zip", "version": "23.01", "installed_path": "C:\\7-Zip"}])
    apps = Applications(result.frame())
    assert apps.get("mac") == [
        {"name": "Slack", "version": "4.1", "path": "/Applications/Slack.app"},
        {"name": "Xcode", "version": "15", "path": None},  # Oomnitza gets every version as text
    ]
    assert apps.get("empty-mac") == []  # known to have none: Oomnitza's list is emptied
    assert apps.get("pc") == [{"name": "7-Zip", "version": "23.01", "path": "C:\\7-Zip"}]
    assert "never-answered" not in apps and apps.get("never-answered") is None
    assert result.summary().devices_with_software == 3
    assert result.summary().software_rows == 3


def test_prism_rows_speak_only_for_the_devices_they_name_and_only_listed_devices_are_kept():
    prism = SoftwareResult(route="prism")
    prism.add("listed", [{"device_id": "listed", "name": "Zoom", "version": "6"}], answered=False)
    prism.add("not-inventoried", [{"device_id": "not-inventoried", "name": None}], answered=False)
    prism.add("enrolled-later", [{"device_id": "enrolled-later", "name": "Chrome"}], answered=False)
    prism.prism_rows = 3
    result = SoftwareResult(route="prism")
    result.add("windows-pc", [])
    result.merge(prism, keep={"listed", "not-inventoried"})
    apps = Applications(result.frame())
    assert apps.get("listed") == [{"name": "Zoom", "version": "6", "path": None}]
    assert apps.get("not-inventoried") is None  # its software in Oomnitza is left alone
    assert apps.get("enrolled-later") is None
    assert apps.get("windows-pc") == []
    assert result.summary().prism_rows == 3


def test_a_large_result_is_packed_as_it_grows_and_stays_categorical(monkeypatch):
    monkeypatch.setattr(software, "FLUSH_ROWS", 50)
    result = SoftwareResult(route="per_device")
    for n in range(40):
        result.add(
            f"device-{n}", [apple_app(f"App {k}", f"{k}.0", f"/Applications/App {k}.app") for k in range(5)]
        )
    assert len(result.parts) == 4  # 200 rows packed 50 at a time, not held as Python objects
    frame = result.frame()
    assert len(frame) == 200 and all(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame)
    assert Applications(frame).get("device-39")[4] == {
        "name": "App 4",
        "version": "4.0",
        "path": "/Applications/App 4.app",
    }
