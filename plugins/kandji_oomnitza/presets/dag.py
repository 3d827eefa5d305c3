"""One on-demand DAG per device-action preset, from the registry in ``presets.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag

from kandji_oomnitza import names
from kandji_oomnitza.common.dag_defaults import START_DATE, default_args
from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator
from kandji_oomnitza.presets.registry import (
    CONNECTION_PARAMS,
    PRESETS,
    SERIAL_PARAM,
    Preset,
    connection_param,
)

CURL_EXAMPLE = """curl -X POST "$AIRFLOW_URL/api/v2/dags/{dag_id}/dagRuns" \\
  -H "Authorization: Bearer $AIRFLOW_TOKEN" -H "Content-Type: application/json" \\
  -d '{{"logical_date": null, "conf": {{"serial_number": "C02ABC123XYZ"{extra}}}}}'"""


def _doc(preset: Preset) -> str:
    inputs = (
        "\n".join(f"- `{name}`: {spec['description']}" for name, spec in preset.params.items()) or "- none"
    )
    extra = "".join(
        f', "{name}": ...'
        for name, spec in preset.params.items()
        if spec.get("default") is None and "null" not in spec["type"]
    )
    target = (
        f"Kandji action `{preset.action}`"
        if preset.action
        else "no Kandji action (a read, then an Oomnitza update)"
    )
    return f"""
# {preset.title}

{preset.summary}

- Runs {target} on the device whose serial number is given (exact match; Kandji's own filter matches
  substrings, so near-misses are refused, as are serial numbers shared by two devices).
- Platforms: {", ".join(preset.platforms)}. Any other device is refused before anything is sent.
- Sent **at most once**: the action task does not retry (device actions are not idempotent).

Inputs (the trigger form; conf keys for the REST API):
- `serial_number`: the device's serial number
{inputs}

Trigger from an Oomnitza workflow's API block or any script through Airflow's REST API:

```bash
{CURL_EXAMPLE.format(dag_id=preset.dag_id, extra=extra)}
```
"""


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
        doc_md=_doc(preset),
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
