"""
### Kandji Get Asset Details (an on-demand preset, an Airflow DAG)

Reads one device's details from Kandji and updates its asset in Oomnitza, mapped as the assets
integration named by `KANDJI_OOMNITZA_ASSET_DETAILS_MAPPING` or `[kandji_oomnitza] asset_details_mapping`
maps it (default `kandji_devices_and_software.yaml` in the integrations folder). A missing or unusable mapping file is this
file's import error; the other presets are built by `kandji_presets.py` either way.
"""

from kandji_oomnitza.integrations.asset_details import AssetRecord, asset_details_mapping
from kandji_oomnitza.presets.dag import build_asset_details

globals().update(build_asset_details(AssetRecord(asset_details_mapping())))
