"""
### Kandji → Oomnitza integrations (Airflow DAG factory)

One DAG per file in `include/integrations/` (the DAG id is the file name). See each DAG's own docs.
"""

from kandji_oomnitza.integrations.dag import build_all

globals().update(build_all())
