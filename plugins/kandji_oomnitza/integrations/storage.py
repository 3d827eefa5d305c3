"""Where a run's artifacts live: ``<reports path>/<dag_id>/<run folder>/``, with ``errors.csv`` for every
run and ``dry_run_payloads.jsonl`` for a dry run. The reports path is the Airflow Variable
``kandji_oomnitza_reports_path`` (any ObjectStoragePath URL: ``s3://conn@bucket/reports``,
``file:///shared/reports``), by default ``file://$AIRFLOW_HOME/kandji_oomnitza_reports``. The report
writes there, the load writes a dry run's payloads, and the Integrations page reads the error logs."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable

REPORTS_VARIABLE = "kandji_oomnitza_reports_path"
ERROR_LOG = "errors.csv"
DRY_RUN_PAYLOADS = "dry_run_payloads.jsonl"


def default_reports_root() -> str:
    return "file://" + os.path.join(
        os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "kandji_oomnitza_reports"
    )


def reports_root() -> str:
    """The reports path as a task sees it (the Task SDK's Variable)."""
    from airflow.sdk import Variable

    return Variable.get(REPORTS_VARIABLE, default=default_reports_root())


def run_folder(run_id: str) -> str:
    """A folder name per run id: readable, and never shared by two run ids (``run:1`` and ``run_1``
    differ in their hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def artifact_path(root: str, dag_id: str, run_id: str, name: str = ERROR_LOG):
    """Where a run's artifact lives; the Integrations page finds the error log the same way."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root) / dag_id / run_folder(run_id) / name


def write_artifact(dag_id: str, run_id: str, name: str, chunks: Iterable[str]) -> str:
    target = artifact_path(reports_root(), dag_id, run_id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(chunk)
    return str(target)
