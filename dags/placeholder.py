"""
### Placeholder

A one-task DAG that keeps the DAG folder non-empty until the integration and preset DAGs land.
It does nothing but log a line.
"""

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="kandji_oomnitza_placeholder",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["kandji", "oomnitza"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={"owner": "it-ops", "retries": 2, "retry_exponential_backoff": 2.0},
)
def kandji_oomnitza_placeholder():
    @task
    def hello(**context) -> dict:
        import logging

        logging.getLogger(__name__).info("placeholder ran with conf %s", context["params"])
        return {"ok": True}

    hello()


kandji_oomnitza_placeholder()
