"""The load step as an operator (so the task carries a link to the records in Oomnitza), and the software
frame's way through XCom: in parts, each one request to the Execution API."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from kandji_oomnitza import names
from kandji_oomnitza.hooks.links import OomnitzaRecordsLink
from kandji_oomnitza.integrations.config import Integration

if TYPE_CHECKING:
    import pandas as pd

# Sending a fleet in batches of 100 and waiting for Oomnitza's outcome (load.outcome_timeout_seconds, 15
# minutes by default): 100,000 devices took under 3 minutes end to end in the benchmarks.
LOAD_TIMEOUT = timedelta(hours=2)


def push_software(ti: Any, software: pd.DataFrame, rows_per_part: int | None = None) -> None:
    """The software frame as XComs ``software.0``, ``software.1``, … and ``software`` (how many): each XCom
    read or write must finish within the Execution API's timeout (5 s by default), and reading back the
    software of 100,000 devices (9.3M rows) as one XCom took about 7 s."""
    from kandji_oomnitza.integrations.software import software_parts

    parts = software_parts(software, rows_per_part)
    for number, part in enumerate(parts):
        ti.xcom_push(key=f"{names.SOFTWARE}.{number}", value=part)
    ti.xcom_push(key=names.SOFTWARE, value={"parts": len(parts), "rows": len(software)})


def pull_software(ti: Any, task_id: str = names.EXTRACT) -> pd.DataFrame | None:
    from kandji_oomnitza.integrations.software import concat_software

    head = ti.xcom_pull(task_ids=task_id, key=names.SOFTWARE)
    if head is None:
        return None
    return concat_software(
        [ti.xcom_pull(task_ids=task_id, key=f"{names.SOFTWARE}.{number}") for number in range(head["parts"])]
    )


class OomnitzaLoadOperator(BaseOperator):
    """Load an integration's transformed frame into Oomnitza through the connector protocol.

    Reads the frame from the transform's XCom and, for an assets integration with software, each
    device's apps from the extract's. With ``dry_run`` (a DAG param) it sends nothing, writes every
    payload it would have sent to an artifact and returns a preview. Each attempt uses its own Oomnitza
    run ("portion"), named from the DAG run and the try number; a retry resends every record, which
    Oomnitza matches on the sync key, so it creates no duplicates.

    Its result (XCom ``result``, a ``LoadResult``) is pushed whatever happens, before a failure is raised:
    the report reads it to account for every record, including those a broken load never sent.
    """

    operator_extra_links = (OomnitzaRecordsLink(),)
    ui_color = "#e3f1fb"

    def __init__(self, *, integration: Integration, **kwargs: Any) -> None:
        kwargs.setdefault("do_xcom_push", False)  # the result goes out under names.RESULT, failure or not
        kwargs.setdefault("execution_timeout", LOAD_TIMEOUT)
        super().__init__(**kwargs)
        self.integration = integration
        self.oomnitza_conn_id = integration.oomnitza_conn_id
        self.data_type = integration.type

    def _delta_plan(self, read_at: str, forced: bool) -> tuple[Any, Any]:
        """The run's delta plan (None when delta loads are off) and where its store lives."""
        if not self.integration.delta.enabled:
            return None, None
        from kandji_oomnitza.integrations.delta import DeltaPlan, full_sync_reason, read_store, store_path
        from kandji_oomnitza.integrations.report import reports_root

        path = store_path(reports_root(), self.dag_id)
        store, problem = read_store(path, read_at)
        if problem:
            self.log.warning("Delta load: %s; this run sends every record", problem)
        reason = full_sync_reason(self.integration, store, problem, read_at, forced)
        self.log.info("Delta load: %s", f"full sync, {reason}" if reason else "only changed records are sent")
        return DeltaPlan(self.integration, store, reason, read_at), path

    def execute(self, context) -> None:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook
        from kandji_oomnitza.integrations.handover import ExtractStats
        from kandji_oomnitza.integrations.report import DRY_RUN_PAYLOADS, write_artifact
        from kandji_oomnitza.integrations.steps import dry_run, load

        ti = context["ti"]
        started = time.monotonic()
        frame = ti.xcom_pull(task_ids=names.TRANSFORM)
        software = pull_software(ti) if self.integration.type == "assets" else None
        self.log.info(
            "Read %d transformed record(s)%s from XCom in %.1fs",
            len(frame),
            f" and {len(software)} software row(s)" if software is not None else "",
            time.monotonic() - started,
        )
        stats = ExtractStats.from_xcom(ti.xcom_pull(task_ids=names.EXTRACT, key=names.STATS))
        delta, store_at = self._delta_plan(stats.read_at, bool(context["params"].get("full_sync")))
        if context["params"].get("dry_run"):
            result = dry_run(
                self.integration,
                frame,
                software,
                lambda lines: write_artifact(self.dag_id, ti.run_id, DRY_RUN_PAYLOADS, lines),
                delta,
            )
            ti.xcom_push(key=names.RESULT, value=result.to_xcom())
            return
        checked = ti.xcom_pull(task_ids=names.CHECK_FIELDS)
        portion = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.dag_id}/{ti.run_id}/{ti.try_number}"))
        result, failure = load(
            self.integration,
            OomnitzaHook(self.oomnitza_conn_id),
            frame,
            software=software,
            portion=portion,
            delta=delta,
        )
        result.calls += (checked or {}).get("calls", 0)
        if delta is not None and delta.store is not None:
            from kandji_oomnitza.integrations.delta import write_store

            write_store(store_at, delta.store)  # only now: it holds what Oomnitza confirmed
        ti.xcom_push(key=names.RESULT, value=result.to_xcom())
        if failure is not None:
            self.log.error(
                "The load stopped after %d of %d record(s) were sent: %s. Oomnitza's run %s was finalized "
                "so its log closes; the report lists every record not loaded.",
                result.sent,
                result.records,
                result.failure,
                portion,
            )
            raise failure
