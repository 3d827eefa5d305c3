"""
### Kandji → Oomnitza integrations (Airflow DAG factory)

One DAG per file in `include/integrations/` (the DAG id is the file name). See each DAG's own docs.
"""

from kandji_oomnitza.integration_config import default_integrations_folder
from kandji_oomnitza.integration_dag import build_all

globals().update(build_all(default_integrations_folder()))
