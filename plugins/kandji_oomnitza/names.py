"""Every name another part of the project (or a person, a script, a URL) relies on, defined once: DAG ids,
task ids, XCom keys, the pool. A rename then breaks at import, never at run time.
"""

from __future__ import annotations

# -- pools -------------------------------------------------------------------------------------------
KANDJI_POOL = "kandji_api"  # every task that calls Kandji: integrations sharing a tenant share its limit

# -- DAG ids -----------------------------------------------------------------------------------------
PRESET_DAG_PREFIX = "kandji_preset_"
WORKFLOW_DAG_PREFIX = "kandji_workflow_"


def integration_dag_id(stem: str) -> str:
    """An integration file's DAG: the file's name (``include/integrations/<stem>.yaml``)."""
    return stem


def preset_dag_id(key: str) -> str:
    return f"{PRESET_DAG_PREFIX}{key}"


def workflow_dag_id(stem: str) -> str:
    """A workflow file's DAG (``include/workflows/<stem>.yaml``); its asset has the same name."""
    return f"{WORKFLOW_DAG_PREFIX}{stem}"


# -- integration DAGs: tasks and what they hand each other -------------------------------------------
NEWEST_RUN_ONLY = "newest_run_only"
CHECK_FIELDS = "check_oomnitza_fields"
EXTRACT = "extract"
TRANSFORM = "transform"
LOAD = "load"
FLAG_MISSING = "flag_missing"
REPORT = "report"

STATS = "stats"  # extract: the run's counts and read time (integrations.handover.ExtractStats)
SOFTWARE = "software"  # extract: the software frame, in parts "software.N"
INDEX = "index"  # transform: the small frame the report needs
HANDOVER_SEAL = "seal"  # extract (of its stats), transform (of the Kandji ids it saw): read by flag_missing
RESULT = "result"  # load: what became of every batch (integrations.handover.LoadResult)
MISSING = "missing"  # flag_missing: what was flagged (integrations.handover.MissingResult)
SKIPPED = "skipped"  # newest_run_only: why the run skipped itself
SUMMARY = "summary"  # report / workflow summary: the run summary (also when the task failed)
RETURN_VALUE = "return_value"  # Airflow's own key of a task's return value

# -- preset DAGs ------------------------------------------------------------------------------------
RUN_ACTION = "run_action"
SERIAL_NUMBER = "serial_number"  # run_action: the serial number it acts on (read by its links)
DEVICE_ID = "device_id"  # run_action: the Kandji device it resolved

# -- workflow DAGs ----------------------------------------------------------------------------------
PREPARE = "prepare"
PER_DEVICE = "per_device"
WORKFLOW_ACTION = f"{PER_DEVICE}.{RUN_ACTION}"  # asks for approval (where required), then acts
WORKFLOW_SUMMARY = "summary"
PROBLEMS = "problems"  # prepare: records nothing may be sent for, and why
DUPLICATES = "duplicates"  # prepare: repeated events of entries another run acts on
NOT_SENT = "not_sent"  # run_action: why nothing was sent ({"outcome", "failure"})
