"""
### Kandji workflows: an Oomnitza change runs a Kandji preset (Airflow DAG factory)

One DAG per file of the workflows folder (default `include/workflows/`; docs/deploy.md), DAG id
`kandji_workflow_<file name>`, scheduled by an asset whose watcher polls Oomnitza in the triggerer. See each DAG's own docs and the README, "Workflows".
"""

from kandji_oomnitza.integrations.asset_details import AssetRecord
from kandji_oomnitza.workflows.dag import build_all

# A workflow running Get Asset Details maps the device as an assets integration does (read at run time).
globals().update(build_all(asset_record=AssetRecord()))
