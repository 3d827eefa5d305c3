"""presets/dag.py: one DAG per preset, its trigger form, and an action task that is never retried."""

from __future__ import annotations

from kandji_oomnitza.presets.dag import build_all, build_asset_details


def test_each_preset_dag_asks_for_the_serial_its_inputs_and_its_connections_and_never_retries():
    dags = build_all()
    assert len(dags) == 7 and "kandji_preset_get_asset_details" not in dags
    lock = dags["kandji_preset_lock_device"]
    assert {"serial_number", "message", "phone_number", "kandji_conn_id"} <= set(lock.params)
    assert "oomnitza_conn_id" not in lock.params
    (task,) = lock.tasks
    assert task.retries == 0 and task.execution_timeout is not None
    details = build_asset_details(lambda device: {})["kandji_preset_get_asset_details"]
    assert {"kandji_conn_id", "oomnitza_conn_id"} <= set(details.params)
