"""A person's answer to a human-in-the-loop question, recorded by Airflow's own code: the function Airflow's
REST API runs for ``PATCH .../hitlDetails`` (``update_hitl_detail``), called in this process against the test
session's metadata DB, as the given user. ``dag.test()`` waits for exactly that (it never answers itself).
The form's fields are submitted as the question set them, as a person pressing a button does."""

from __future__ import annotations

import threading
from typing import Any

from helpers.waiting import deadline_seconds


def asked(dag_id: str, task_id: str) -> dict[str, Any] | None:
    """The open question of ``task_id`` in the newest run of ``dag_id`` waiting for input, if any."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=dag_id, task_id=task_id, state=TaskInstanceState.AWAITING_INPUT)
            .order_by(TaskInstance.start_date.desc())
            .first()
        )
        detail = session.get(HITLDetail, ti.id) if ti is not None else None
        if detail is None or detail.response_received:
            return None
        return {
            "run_id": ti.run_id,
            "subject": detail.subject,
            "body": detail.body,
            "params": detail.params or {},
        }


def answer(
    dag_id: str,
    task_id: str,
    run_id: str,
    option: str,
    user: str,
    params: dict[str, Any],
    changed: dict[str, Any] | None = None,
) -> None:
    """Answer ``option`` as ``user``, the form as asked (``changed``: fields a person edited first)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    form = {name: (spec.get("value") if isinstance(spec, dict) else spec) for name, spec in params.items()}
    form |= changed or {}
    with create_session() as session:
        update_hitl_detail(
            dag_id=dag_id,
            dag_run_id=run_id,
            task_id=task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option], params_input=form),
            user=SimpleAuthManagerUser(username=user, role="admin"),
            session=session,
        )


class Answerer(threading.Thread):
    """Beside a ``dag.test()`` run: waits for ``task_id`` to ask (at most ``within`` seconds on an idle
    machine), keeps what it asked, and answers ``option`` as ``user`` (or, with ``option=None``, only
    watches: the timeout then answers); ``changed``: form fields edited before answering; ``after``: another
    answerer to let try first."""

    def __init__(
        self,
        dag_id: str,
        task_id: str,
        option: str | None,
        user: str = "alice",
        within: float = 120,
        changed: dict[str, Any] | None = None,
        after: threading.Thread | None = None,
    ):
        super().__init__(daemon=True)
        self.args = (dag_id, task_id, option, user)
        self.changed, self.after = changed, after
        self.within = deadline_seconds(within)
        self.question: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        import time

        dag_id, task_id, option, user = self.args
        deadline = time.monotonic() + self.within
        try:
            while self.question is None and time.monotonic() < deadline:
                self.question = asked(dag_id, task_id)
                time.sleep(0.5)
            if self.after is not None:  # answers once the other one has tried
                self.after.join(timeout=max(0.0, deadline - time.monotonic()))
            if self.question is not None and option is not None:
                answer(
                    dag_id,
                    task_id,
                    self.question["run_id"],
                    option,
                    user,
                    self.question["params"],
                    self.changed,
                )
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def result(self) -> dict[str, Any]:
        """The question it saw (after the run): it must have asked, and the answer must have gone through."""
        self.join(timeout=5)
        assert self.error is None, f"answering failed: {self.error!r}"
        assert self.question is not None, "the task never asked"
        return self.question
