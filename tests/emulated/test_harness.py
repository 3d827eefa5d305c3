"""The harness itself: a DAG runs against the session's metadata DB and its results can be read back."""

from __future__ import annotations

import os

from helpers.harness import AIRFLOW_HOME, ROOT


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


def test_run_dag_reads_back_state_xcom_and_log(run_dag, kandji_emulator, oomnitza_emulator):
    result = run_dag("kandji_users", conf={"dry_run": True})
    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) == {"success"}
    assert result.xcom("report")["dry_run"] is True
    assert "Dry run: nothing was sent" in result.log
