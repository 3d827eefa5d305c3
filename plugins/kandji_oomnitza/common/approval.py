"""A person's answer, as Airflow records it: what the workflows' approvals and the integrations'
safeguard confirmations ask through Airflow's human-in-the-loop, and what the answer means.

The answer is read only from the resume event Airflow built from its own human-in-the-loop record (who
answered, authenticated by its API server, and which option), never from an XCom or a run's conf: those
can be written by others, and a cleared run would replay them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.execution_time.hitl import HITLUser

APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"


def assigned_users(user_ids: Sequence[str]) -> list[HITLUser] | None:
    """Who may answer, as Airflow's human-in-the-loop takes them (None: any user allowed to answer)."""
    return [{"id": user, "name": user} for user in user_ids] or None


def md_literal(value: Any) -> str:
    """A record's value as literal text in a question's Markdown: an inline code span, so whoever can edit a
    record in Kandji or Oomnitza cannot put a link (even a bare URL, which GitHub-style Markdown turns into
    one), an image or formatting in front of the person answering."""
    if value in (None, ""):
        return "(none)"
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


@dataclass(frozen=True)
class Answer:
    """What Airflow's record says: who approved, or why nothing is done (and whether that is a failure)."""

    approved_by: str | None
    why_not: str | None = None
    failure: bool = False


def read_answer(event: Any, allowed: list[str], timeout: timedelta, asked: str = "those asked") -> Answer:
    """Airflow's resume event for a human-in-the-loop task: approved when an allowed user (anyone allowed to
    answer, when ``allowed`` is empty) chose Approve; otherwise why not: rejected (by whom), no answer
    within ``timeout`` (the default answer, given by nobody), an answer by someone not allowed, or no
    answer on record at all."""
    from kandji_oomnitza.settings_files import duration_words

    if not isinstance(event, dict) or "chosen_options" not in event or event.get("error"):
        return Answer(None, "Airflow holds no answer to the question", failure=True)
    who = event.get("responded_by_user")
    if not isinstance(who, dict) or not who.get("id"):  # the timeout applied the default answer
        return Answer(None, f"no answer within {duration_words(timeout)}")
    name = who.get("name") or who["id"]
    if list(event.get("chosen_options") or []) != [APPROVE_OPTION]:
        return Answer(None, f"rejected by {name}")
    if allowed and who["id"] not in allowed:
        return Answer(
            None, f"approved by {name}, who is not one of {asked} ({', '.join(allowed)})", failure=True
        )
    return Answer(name)


def required_actions_url(context: Any) -> str:
    """Where the person answers: Airflow's own link to the task's Required Actions (``[api] base_url``), or
    its path when no base URL is set."""
    from urllib.parse import quote

    from airflow.providers.standard.operators.hitl import HITLOperator

    from kandji_oomnitza.common.notify import airflow_url

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context)
    except ValueError:  # no [api] base_url
        ti = context["ti"]
        path = "/".join(
            ["/dags", quote(ti.dag_id, safe=""), "runs", quote(ti.run_id, safe=""), "tasks", ti.task_id]
        )
        return airflow_url(f"{path}/required_actions?map_index={ti.map_index}")


def not_running_any_more(context: dict[str, Any]) -> str | None:
    """This task instance's state in Airflow's own record, when it is no longer ``running`` (else None).

    Asked by a task resumed after a human-in-the-loop answer, right before it acts: under Airflow 3.3.2 an
    answer given within seconds of the task parking can make the scheduler fail the resumed task while its
    code runs on (the parked attempt's exit, reported late by the executor, is taken for the resumed one;
    see SECURITY.md). Acting only while Airflow still counts the task as running keeps an action from being
    sent under a task Airflow considers failed. A state that cannot be read counts as running: the check
    narrows Airflow's race, it never replaces the answer's own checks."""
    ti = context["ti"]
    try:
        states = ti.get_task_states(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
        )
    except Exception:  # an older Task SDK, or the API not answering: Airflow fails the task itself then
        return None
    key = ti.task_id if (ti.map_index is None or ti.map_index < 0) else f"{ti.task_id}_{ti.map_index}"
    state = (states or {}).get(ti.run_id, {}).get(key)
    return None if state in (None, "running") else str(state)
