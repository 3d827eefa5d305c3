"""The Integrations page: a FastAPI app the Airflow API server mounts at ``/kandji-oomnitza``.

``GET /`` is the page (static HTML + JS, shown inside the Airflow UI through an external view);
``GET /api/integrations`` the tiles, ``GET /api/integrations/{id}`` one integration with its mapping
table and last runs, ``GET /api/integrations/{id}/runs/{run_id}/errors`` a run's error log.

Who sees what is Airflow's decision: every endpoint resolves the logged-in user from Airflow's own
session (JWT cookie or bearer token) and asks Airflow's auth manager, part by part, with the permission
that guards the same data in Airflow (DAGs, XComs, task logs, human-in-the-loop details, assets). A user
sees only the integrations whose DAGs they may read; "Run now" is offered only where they may create DAG runs, and the run itself
is created by the page calling Airflow's public REST API as that user (``POST /api/v2/dags/{id}/dagRuns``),
so Airflow checks the permission again.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from kandji_oomnitza import names
from kandji_oomnitza.integrations.handover import RunSummary
from kandji_oomnitza.settings_files import SettingsFile
from kandji_oomnitza.ui.page.overview import (
    Detail,
    RunRow,
    Tile,
    mapping_rows,
    read_integration_files,
    run_summaries,
    run_summary,
    skip_reasons,
    tile,
)
from kandji_oomnitza.ui.page.workflows import WorkflowCard, read_workflow_files
from kandji_oomnitza.ui.page.workflows import card as workflow_card

STATIC = Path(__file__).parent / "static"
RUNS_SHOWN = 10
ERROR_ROWS_SHOWN = 1000


def _auth_manager():
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


class Access:
    """What the logged-in user may do with each integration's DAG (Airflow's auth manager decides)."""

    def __init__(self, user: GetUserDep) -> None:
        self.user = user
        self.manager = _auth_manager()

    def can_read(self, dag_id: str) -> bool:
        return self.manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=self.user)

    def can_trigger(self, dag_id: str) -> bool:
        return self.manager.is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=self.user
        )

    def can_read_xcom(self, dag_id: str) -> bool:
        """Run summaries and counts come from XCom: Airflow gates XCom apart from the DAG."""
        return self.manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag_id), user=self.user
        )

    def can_read_approvals(self, dag_id: str) -> bool:
        """Approval requests (subject: serial, device name; approvers) are Airflow's HITL details."""
        return self.manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.HITL_DETAIL,
            details=DagDetails(id=dag_id),
            user=self.user,
        )

    def can_read_assets(self) -> bool:
        """A watcher's last poll is a value of its asset's state store: Airflow gates assets apart."""
        return self.manager.is_authorized_asset(method="GET", user=self.user)

    def can_read_logs(self, dag_id: str) -> bool:
        """Error logs say what each task did to each record: Airflow gates task logs apart too."""
        return self.manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_LOGS,
            details=DagDetails(id=dag_id),
            user=self.user,
        )


AccessDep = Annotated[Access, Depends(Access)]


class ErrorLog(BaseModel):
    run_id: str
    location: str
    total_rows: int
    rows: list[dict[str, str]]
    truncated: bool


def _readable_files(access: Access) -> list[SettingsFile]:
    files = read_integration_files()
    readable = [f for f in files if access.can_read(f.dag_id)]
    if files and not readable:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "You may not read any integration DAG. Ask an Airflow admin for read access to the "
            "integration DAGs (" + ", ".join(f.dag_id for f in files) + ").",
        )
    return readable


def _file(access: Access, integration_id: str) -> SettingsFile:
    for entry in read_integration_files():
        if entry.dag_id == integration_id:
            if not access.can_read(integration_id):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, f"You may not read the DAG {integration_id!r}."
                )
            return entry
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"No integration file {integration_id}.yaml in the integrations folder.",
    )


def _runs(session: Session, access: Access, dag_id: str, limit: int) -> list[RunRow]:
    runs = session.scalars(
        select(DagRun)
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.run_after.desc(), DagRun.id.desc())
        .limit(limit)
    ).all()
    if not access.can_read_xcom(dag_id):
        return [run_summary(dag_id, run, None, False, summary_hidden=True) for run in runs]
    summaries = run_summaries(session, dag_id, [r.run_id for r in runs], names.REPORT)
    skipped = skip_reasons(session, dag_id, [r.run_id for r in runs])
    logs = access.can_read_logs(dag_id)
    return [
        run_summary(
            dag_id,
            run,
            summaries.get(run.run_id),
            logs and _lists_records(RunSummary.read(summaries.get(run.run_id))),
            skipped_reason=skipped.get(run.run_id),
        )
        for run in runs
    ]


def _lists_records(summary: RunSummary | None) -> bool:
    """Whether a run's error log lists any record (an empty one is a header only: no button for it). A
    summary from before the count was kept: whether it names an error log at all."""
    if summary is None or not summary.error_log:
        return False
    return summary.error_log_rows is None or summary.error_log_rows > 0


def _dag_model(session: Session, dag_id: str) -> DagModel | None:
    return session.scalar(select(DagModel).where(DagModel.dag_id == dag_id))


def _tile(session: Session, access: Access, entry: SettingsFile, detail: bool) -> Tile:
    if entry.model is None:
        return tile(
            entry, dag_model=None, last_run=None, can_trigger=False, tile_type=Detail if detail else Tile
        )
    runs = _runs(session, access, entry.dag_id, RUNS_SHOWN if detail else 1)
    result = tile(
        entry,
        dag_model=_dag_model(session, entry.dag_id),
        last_run=runs[0] if runs else None,
        can_trigger=access.can_trigger(entry.dag_id),
        tile_type=Detail if detail else Tile,
    )
    if isinstance(result, Detail):
        result.mappings = mapping_rows(entry.model)
        result.runs = runs
    return result


def _reports_root() -> str:
    # The API server has no task context, where the Task SDK's Variable.get only returns the default.
    from airflow.models import Variable

    from kandji_oomnitza.integrations.storage import REPORTS_VARIABLE, default_reports_root

    return Variable.get(REPORTS_VARIABLE, default_var=default_reports_root())  # noqa: AIR311


def create_app() -> FastAPI:
    app = FastAPI(
        title="Kandji → Oomnitza integrations",
        description="The Integrations page and its JSON endpoints (read-only; runs are created through Airflow's API).",
    )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/integrations", response_model=list[Tile])
    def list_integrations(session: SessionDep, access: AccessDep) -> list[Tile]:
        return [_tile(session, access, entry, detail=False) for entry in _readable_files(access)]

    @app.get("/api/integrations/{integration_id}", response_model=Detail)
    def get_integration(integration_id: str, session: SessionDep, access: AccessDep) -> Tile:
        return _tile(session, access, _file(access, integration_id), detail=True)

    @app.get("/api/integrations/{integration_id}/runs/{run_id}/errors", response_model=ErrorLog)
    def get_error_log(
        integration_id: str,
        run_id: str,
        session: SessionDep,
        access: AccessDep,
        limit: Annotated[int, Query(ge=1, le=ERROR_ROWS_SHOWN)] = ERROR_ROWS_SHOWN,
    ) -> ErrorLog:
        from kandji_oomnitza.integrations.storage import artifact_path

        entry = _file(access, integration_id)
        if not access.can_read_logs(entry.dag_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"You may not read the task logs of {entry.dag_id}, and an error log is part of them. Ask an "
                "Airflow admin for task-log access to this DAG.",
            )
        exists = session.scalar(
            select(DagRun.id).where(DagRun.dag_id == entry.dag_id, DagRun.run_id == run_id)
        )
        if exists is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No run {run_id!r} of {entry.dag_id}.")
        # The location is derived from the run, never taken from the request or the XCom.
        location = artifact_path(_reports_root(), entry.dag_id, run_id)
        try:
            text = location.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"Run {run_id!r} has no error log at {location} (the run has not reached its report step).",
            ) from None
        except Exception as exc:
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, f"The error log at {location} could not be read: {exc}"
            ) from None
        rows = list(csv.DictReader(io.StringIO(text)))
        return ErrorLog(
            run_id=run_id,
            location=str(location),
            total_rows=len(rows),
            rows=rows[:limit],
            truncated=len(rows) > limit,
        )

    @app.get("/api/workflows", response_model=list[WorkflowCard])
    def list_workflows(session: SessionDep, access: AccessDep) -> list[WorkflowCard]:
        """The workflow files whose DAGs the user may read (none is not an error: the integrations
        answer the 403), with their last runs and the approvals waiting."""
        assets = access.can_read_assets()
        return [
            workflow_card(
                session,
                entry,
                dag_model=_dag_model(session, entry.dag_id),
                show_outcomes=access.can_read_xcom(entry.dag_id),
                show_approvals=access.can_read_approvals(entry.dag_id),
                show_last_poll=assets,
            )
            for entry in read_workflow_files()
            if access.can_read(entry.dag_id)
        ]

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
