"""The load step as an operator, so the task carries a link to the records in Oomnitza."""

from __future__ import annotations

import uuid
from typing import Any

from airflow.sdk import BaseOperator

from kandji_oomnitza.hooks.links import OomnitzaRecordsLink
from kandji_oomnitza.integrations.config import Integration

RESULT_KEY = "result"


class OomnitzaLoadOperator(BaseOperator):
    """Load an integration's transformed frame into Oomnitza through the connector protocol.

    Reads the frame from the XCom of ``transform_task_id`` and, given ``software_xcom`` (task id, key),
    each device's apps from that XCom. With ``dry_run`` (a DAG param) it sends nothing, writes every
    payload it would have sent to an artifact and returns a preview. Each attempt uses its own Oomnitza
    run ("portion"), named from the DAG run and the try number; a retry resends every record, which
    Oomnitza matches on the sync key, so it creates no duplicates.

    Its result (XCom ``result``) is pushed whatever happens, before a failure is raised: the report
    reads it to account for every record, including those a broken load never sent.
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
        stats_task_id: str = "extract",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("do_xcom_push", False)  # the result goes out under RESULT_KEY, failure or not
        super().__init__(**kwargs)
        self.integration = integration
        self.oomnitza_conn_id = integration.oomnitza_conn_id
        self.data_type = integration.type
        self.transform_task_id = transform_task_id
        self.check_task_id = check_task_id
        self.software_xcom = software_xcom
        self.stats_task_id = stats_task_id

    def _delta_plan(self, context) -> tuple[Any, Any]:
        """The run's delta plan (None when delta loads are off) and where its store lives."""
        if not self.integration.delta.enabled:
            return None, None
        from kandji_oomnitza.integrations.delta import DeltaPlan, full_sync_reason, read_store, store_path
        from kandji_oomnitza.integrations.report import reports_root

        read_at = context["ti"].xcom_pull(task_ids=self.stats_task_id, key="stats")["read_at"]
        path = store_path(reports_root(), self.dag_id)
        store, problem = read_store(path, read_at)
        if problem:
            self.log.warning("Delta load: %s; this run sends every record", problem)
        forced = bool(context["params"].get("full_sync"))
        reason = full_sync_reason(self.integration, store, problem, read_at, forced)
        self.log.info("Delta load: %s", f"full sync, {reason}" if reason else "only changed records are sent")
        return DeltaPlan(self.integration, store, reason, read_at), path

    def execute(self, context) -> None:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.integrations.report import DRY_RUN_PAYLOADS, write_artifact
        from kandji_oomnitza.integrations.software import pull_software
        from kandji_oomnitza.integrations.steps import dry_run, load

        ti = context["ti"]
        frame = ti.xcom_pull(task_ids=self.transform_task_id)
        software = None
        if self.software_xcom:
            task_id, key = self.software_xcom
            software = pull_software(ti, task_id, key)
        delta, store_at = self._delta_plan(context)
        if context["params"].get("dry_run"):
            result = dry_run(
                self.integration,
                frame,
                software,
                lambda lines: write_artifact(self.dag_id, ti.run_id, DRY_RUN_PAYLOADS, lines),
                delta,
            )
            ti.xcom_push(key=RESULT_KEY, value=result)
            return
        checked = ti.xcom_pull(task_ids=self.check_task_id) if self.check_task_id else None
        portion = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dag_id}/{ti.run_id}/{ti.try_number}"))
        result, failure = load(
            self.integration,
            OomnitzaHook(self.oomnitza_conn_id),
            frame,
            software=software,
            portion=portion,
            delta=delta,
        )
        result["calls"] += (checked or {}).get("calls", 0)
        if delta is not None and delta.store is not None:
            from kandji_oomnitza.integrations.delta import write_store

            write_store(store_at, delta.store)  # only now: it holds what Oomnitza confirmed
        ti.xcom_push(key=RESULT_KEY, value=result)
        if failure is not None:
            self.log.error(
                "The load stopped after %d of %d record(s) were sent: %s. Oomnitza's run %s was finalized "
                "so its log closes; the report lists every record not loaded.",
                result["sent"],
                result["records"],
                result["failure"],
                portion,
            )
            raise failure
