"""One on-demand DAG per device-action preset, from the registry (``registry.py``): only its building; the
DAG's docs are ``docs.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import START_DATE, default_args
from kandji_oomnitza.presets.docs import dag_doc
from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator
from kandji_oomnitza.presets.registry import (
    CONNECTION_PARAMS,
    PRESETS,
    SERIAL_PARAM,
    Preset,
    connection_param,
)

# A run resolves one device, sends one command and watches its delivery for 30 s; Get Asset Details also
# reads the device's details and waits up to 120 s for Oomnitza's outcome.
EXECUTION_TIMEOUT = timedelta(minutes=10)


def build_preset_dag(
    preset: Preset, asset_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> DAG:
    params = {"serial_number": Param(**SERIAL_PARAM)}
    for name, spec in preset.params.items():
        params[name] = preset.param(name, spec["default"])
    for service in preset.services:
        params[CONNECTION_PARAMS[service]] = Param(**connection_param(service))

    @dag(
        dag_id=preset.dag_id,
        dag_display_name=preset.title,
        description=preset.summary,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=16,
        tags=["kandji", "preset", "device-action"],
        doc_md=dag_doc(preset),
        # A device action is never sent twice by Airflow: its only task has no retries.
        default_args=default_args(retries=0, retry_delay=timedelta(0), max_retry_delay=timedelta(0)),
        params=params,
    )
    def preset_dag() -> None:
        KandjiDeviceActionOperator(
            task_id=names.RUN_ACTION,
            task_display_name=preset.title,
            preset=preset,
            asset_record=asset_record,
            retries=0,
            execution_timeout=EXECUTION_TIMEOUT,
        )

    return preset_dag()


def build_all() -> dict[str, DAG]:
    """A DAG per preset that needs nothing but Kandji; Get Asset Details also needs an integration's
    mapping, and is built by ``dags/kandji_preset_asset_details.py`` (``build_asset_details``)."""
    return {preset.dag_id: build_preset_dag(preset) for preset in PRESETS if preset.action is not None}


def build_asset_details(asset_record: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, DAG]:
    preset = next(p for p in PRESETS if p.action is None)
    return {preset.dag_id: build_preset_dag(preset, asset_record)}
