"""Get Asset Details (a preset) maps a device the way an assets integration maps it: this is the one place
the presets borrow from the integrations, and ``dags/kandji_preset_asset_details.py`` wires it, so the
presets themselves know no integration.

The mapping comes from an integration file named by ``KANDJI_OOMNITZA_ASSET_DETAILS_MAPPING`` (or the
Airflow option ``[kandji_oomnitza] asset_details_mapping``): a file name in the integrations folder, or a
path; by default ``kandji_devices_and_software.yaml``. It is
read when the DAG file is parsed: a missing or unusable file is that DAG's import error, not a failed
run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kandji_oomnitza.common.kandji_values import TIMESTAMP_FORMAT
from kandji_oomnitza.exceptions import IntegrationFileError
from kandji_oomnitza.settings_files import setting

if TYPE_CHECKING:  # a workflow DAG holds an AssetRecord without reading any integration file at parse time
    from kandji_oomnitza.integrations.config import Integration

SETTING = "KANDJI_OOMNITZA_ASSET_DETAILS_MAPPING"
DEFAULT_FILE = "kandji_devices_and_software.yaml"


def mapping_file() -> Path:
    from kandji_oomnitza.integrations.config import INTEGRATIONS

    named = Path(os.environ.get(SETTING) or setting("asset_details_mapping") or DEFAULT_FILE)
    return named if named.is_absolute() or named.parent != Path() else INTEGRATIONS.folder() / named


def asset_details_mapping() -> Integration:
    """The assets integration Get Asset Details maps with; an error naming the setting and the fix."""
    from kandji_oomnitza.integrations.config import INTEGRATIONS, load_integration

    path = mapping_file()
    fix = f"set {SETTING} to an assets integration file (a name in {INTEGRATIONS.folder()} or a path)"
    if not path.exists():
        raise IntegrationFileError(
            f"Get Asset Details maps devices with {path}, which does not exist: {fix}."
        )
    integration = load_integration(path)
    if integration.type != "assets" or "serial_number" not in integration.mappings:
        raise IntegrationFileError(
            f"Get Asset Details maps devices with {path}, which is not an assets integration mapping "
            f"serial_number: {fix}."
        )
    return integration


class AssetRecord:
    """One device (with its ``details``) as the Oomnitza record the integration would send: a callable the
    preset's operator is given, so the preset needs no integration code of its own. Without an
    integration, the setting's file is read on first use (a workflow's run: one missing mapping file
    must not take every workflow DAG down at parse time)."""

    def __init__(self, integration: Integration | None = None) -> None:
        self._integration = integration

    @property
    def integration(self) -> Integration:
        if self._integration is None:
            self._integration = asset_details_mapping()
        return self._integration

    def __call__(self, device: dict[str, Any]) -> dict[str, Any]:
        """The record; ``ValueError`` with the reason when the device cannot be mapped."""
        from kandji_oomnitza.integrations.mapping import apply_mappings, source_frame
        from kandji_oomnitza.integrations.steps import payloads, source_paths

        frame = source_frame(
            [device], source_paths(self.integration), id_path="device_id", label_path="device_name"
        )
        mapped = apply_mappings(frame, self.integration, datetime.now(UTC).strftime(TIMESTAMP_FORMAT))
        if len(mapped.rejected):
            raise ValueError(str(mapped.rejected["reason"].iloc[0]))
        return next(payloads(self.integration, mapped.records))
