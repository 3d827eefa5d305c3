"""The harness itself: a DAG runs against the session's metadata DB and its results can be read back."""

from __future__ import annotations

import os

from conftest import AIRFLOW_HOME, ROOT


def test_airflow_home_is_isolated():
    assert os.environ["AIRFLOW_HOME"] == str(AIRFLOW_HOME)
    assert not str(AIRFLOW_HOME).startswith(str(ROOT))
    assert "AIRFLOW__CORE__UNIT_TEST_MODE" not in os.environ
    assert os.environ["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")


def test_connections_from_env_json(airflow_connections):
    from airflow.sdk import BaseHook

    airflow_connections("harness_check", host="http://127.0.0.1:1", password="s3cret", extra={"a": 1})
    conn = BaseHook.get_connection("harness_check")
    assert conn.host == "http://127.0.0.1:1"
    assert conn.password == "s3cret"
    assert conn.extra_dejson == {"a": 1}


def test_run_dag_reads_back_state_xcom_and_log(run_dag):
    import logging

    import pendulum
    from airflow.sdk import dag, task

    @dag(dag_id="harness_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
    def harness_check():
        @task
        def hello(**context) -> dict:
            logging.getLogger(__name__).info("harness ran with conf %s", context["dag_run"].conf)
            return {"ok": True}

        hello()

    result = run_dag(harness_check(), conf={"hello": "world"})
    assert result.state == "success"
    assert result.task_states == {"hello": "success"}
    assert result.xcom("hello") == {"ok": True}
    assert "harness ran with conf {'hello': 'world'}" in result.log
