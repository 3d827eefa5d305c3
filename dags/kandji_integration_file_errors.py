"""
### Kandji → Oomnitza: invalid integration files

This file defines no DAG. It fails to import, naming each file of the integrations folder (default `include/integrations/`; docs/deploy.md)
that does not validate (the file, the field and the fix), so the mistake shows in Airflow's import errors while every
valid integration keeps running (see `kandji_integrations.py`).
"""

from kandji_oomnitza.integrations.config import INTEGRATIONS
from kandji_oomnitza.integrations.dag import build_entry
from kandji_oomnitza.settings_files import raise_for_invalid_files

raise_for_invalid_files(INTEGRATIONS, build=build_entry)
