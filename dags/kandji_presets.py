"""
### Kandji device-action presets (Airflow DAG factory)

One on-demand DAG per preset in `kandji_oomnitza/presets/registry.py` (Get Asset Details is built by
`kandji_preset_asset_details.py`): trigger with `{"serial_number": ...}`.
"""

from kandji_oomnitza.presets.dag import build_all

globals().update(build_all())
