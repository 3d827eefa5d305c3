"""One on-demand DAG per device-action preset, from the registry in ``presets.py``."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, dag

from kandji_oomnitza.presets.operator import KandjiDeviceActionOperator
from kandji_oomnitza.presets.registry import PRESETS, SERIAL_PARAM, Preset

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


def build_preset_dag(preset: Preset) -> DAG:
    params = {"serial_number": Param(**SERIAL_PARAM)}
    for name, spec in preset.params.items():
        params[name] = preset.param(name, spec["default"])

    @dag(
        dag_id=preset.dag_id,
        dag_display_name=preset.title,
        description=preset.summary,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=16,
        tags=["kandji", "preset", "device-action"],
        doc_md=_doc(preset),
        default_args={
            "owner": "it-ops",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
        },
        params=params,
    )
    def preset_dag() -> None:
        # The action must not be resent by Airflow: retries are switched off on this task.
        KandjiDeviceActionOperator(
            task_id="run_action", task_display_name=preset.title, preset=preset, retries=0
        )

    return preset_dag()


def build_all() -> dict[str, DAG]:
    return {preset.dag_id: build_preset_dag(preset) for preset in PRESETS}
