"""What every DAG this project builds shares, in one place: its start date, owner, tags and retry policy.

Retries, from the inside out (the ceilings a run can never exceed):
- a request: the hook retries a transient failure (429, 5xx, a dropped connection, a cut body) up to
  ``max_attempts`` times (6; a 429 is Kandji pacing us, so up to 5x as many), waiting ``Retry-After`` or a
  jittered backoff of at most 120 s, and never longer than ``max_retry_seconds`` (600 s) in all;
- a task: Airflow's retries (``TASK_RETRIES``) with exponential backoff, only for what a retry can fix
  (permanent errors end the task at once), each attempt bounded by the task's ``execution_timeout``;
- a device action is never retried by Airflow (``retries=0``): it may already have reached Kandji.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")  # before any run; catchup is off everywhere
OWNER = "it-ops"
TASK_RETRIES = 2


def default_args(
    *, owner: str = OWNER, retries: int = TASK_RETRIES, retry_delay: timedelta, max_retry_delay: timedelta
) -> dict[str, Any]:
    """A DAG's default_args: the owner, and Airflow's retries with exponential backoff up to a ceiling."""
    args: dict[str, Any] = {"owner": owner, "retries": retries}
    if retries:
        args |= {
            "retry_delay": retry_delay,
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": max_retry_delay,
        }
    return args
