"""An auth manager for the Integrations page tests: Airflow's simple auth manager, plus what finer
auth managers (FAB roles, Keycloak) can express and the simple one cannot: a user, ``dagonly``, who may
read the DAGs but not their XComs, task logs or human-in-the-loop details, nor assets.

The API server loads it by path (``[core] auth_manager = page_auth.DagOnlyAuthManager``), with this
folder on PYTHONPATH.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DAG_ONLY_USER = "dagonly"


class DagOnlyAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == DAG_ONLY_USER and access_entity in (
            DagAccessEntity.XCOM,
            DagAccessEntity.TASK_LOGS,
            DagAccessEntity.HITL_DETAIL,
        ):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )

    def is_authorized_asset(self, *, method, user, details=None) -> bool:
        if user.get_name() == DAG_ONLY_USER:
            return False
        return super().is_authorized_asset(method=method, user=user, details=details)
