"""The shipped integration files as test data: the devices file with keys changed, written to a folder."""

from __future__ import annotations

import yaml

from helpers.harness import ROOT

FOLDER = ROOT / "include" / "integrations"
DEFAULT_ASSETS = yaml.safe_load((FOLDER / "kandji_devices_and_software.yaml").read_text())


def write(tmp_path, data, name="my_integration.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def changed(**changes):
    """The shipped devices file's settings with top-level keys set (None removes the key)."""
    data = {**DEFAULT_ASSETS}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data
