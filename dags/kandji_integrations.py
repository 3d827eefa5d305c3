"""
### Kandji → Oomnitza integrations (Airflow DAG factory)

One DAG per file of the integrations folder (default `include/integrations/` beside the DAGs folder;
see docs/deploy.md), the DAG id being the file name. See each DAG's own docs.
"""

from kandji_oomnitza.integrations.dag import build_all

globals().update(build_all())
