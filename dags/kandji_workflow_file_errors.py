"""
### Kandji workflows: invalid workflow files

This file defines no DAG. It fails to import, naming each file of the workflows folder (default `include/workflows/`; docs/deploy.md) that
does not validate (the file, the field and the fix), so the mistake shows in Airflow's import errors while every
valid workflow keeps running (see `kandji_workflows.py`).
"""

from kandji_oomnitza.settings_files import raise_for_invalid_files
from kandji_oomnitza.workflows.config import WORKFLOWS
from kandji_oomnitza.workflows.dag import build_entry

raise_for_invalid_files(WORKFLOWS, build=build_entry)
