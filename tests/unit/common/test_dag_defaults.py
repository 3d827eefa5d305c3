"""common/dag_defaults.py: one place for every DAG's owner, start and retries."""

from __future__ import annotations

from datetime import timedelta

from kandji_oomnitza.common.dag_defaults import OWNER, TASK_RETRIES, default_args


def test_default_args_retry_with_a_ceiling_and_an_action_never_retries():
    args = default_args(retry_delay=timedelta(minutes=2), max_retry_delay=timedelta(minutes=30))
    assert args == {
        "owner": OWNER,
        "retries": TASK_RETRIES,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
    }
    assert default_args(retries=0, retry_delay=timedelta(0), max_retry_delay=timedelta(0)) == {
        "owner": OWNER,
        "retries": 0,
    }
