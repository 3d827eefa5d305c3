"""The load step as an operator, so the task carries a link to the records in Oomnitza."""

from __future__ import annotations

import uuid
from typing import Any

from airflow.sdk import BaseOperator

from kandji_oomnitza.integration_config import Integration
from kandji_oomnitza.operators.links import OomnitzaRecordsLink


class OomnitzaLoadOperator(BaseOperator):
    """Load an integration's transformed frame into Oomnitza through the connector protocol.

    Reads the frame from the XCom of ``transform_task_id`` and, given ``software_xcom`` (task id, key),
    each device's apps from that XCom. With ``dry_run`` (a DAG param) it sends
    nothing and returns what would have been sent. Each attempt uses its own Oomnitza run ("portion"),
    named from the DAG run and the try number; a retry resends every record, which Oomnitza matches on
    the sync key, so it creates no duplicates.
    """

    operator_extra_links = (OomnitzaRecordsLink(),)
    ui_color = "#e3f1fb"

    def __init__(
        self,
        *,
        integration: Integration,
        transform_task_id: str,
        check_task_id: str | None = None,
        software_xcom: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.integration = integration
        self.oomnitza_conn_id = integration.oomnitza_conn_id
        self.data_type = integration.type
        self.transform_task_id = transform_task_id
        self.check_task_id = check_task_id
        self.software_xcom = software_xcom

    def execute(self, context) -> dict[str, Any]:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.integration import load
        from kandji_oomnitza.software import pull_software

        ti = context["ti"]
        frame = ti.xcom_pull(task_ids=self.transform_task_id)
        software = None
        if self.software_xcom:
            task_id, key = self.software_xcom
            software = pull_software(ti, task_id, key)
        checked = ti.xcom_pull(task_ids=self.check_task_id) if self.check_task_id else None
        portion = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dag_id}/{ti.run_id}/{ti.try_number}"))
        loaded = load(
            self.integration,
            OomnitzaHook(self.oomnitza_conn_id),
            frame,
            software=software,
            portion=portion,
            dry_run=bool(context["params"].get("dry_run")),
        )
        loaded["calls"] = loaded.get("calls", 0) + (checked or {}).get("calls", 0)
        return loaded
