"""A preset DAG's documentation (its Docs tab): what the action sends, its inputs, from the registry."""

from __future__ import annotations

from kandji_oomnitza.presets.registry import Preset

CURL_EXAMPLE = """curl -X POST "$AIRFLOW_URL/api/v2/dags/{dag_id}/dagRuns" \\
  -H "Authorization: Bearer $AIRFLOW_TOKEN" -H "Content-Type: application/json" \\
  -d '{{"logical_date": null, "conf": {{"serial_number": "C02ABC123XYZ"{extra}}}}}'"""


def dag_doc(preset: Preset) -> str:
    inputs = (
        "\n".join(f"- `{name}`: {spec['description']}" for name, spec in preset.params.items()) or "- none"
    )
    extra = "".join(f', "{name}": ...' for name in preset.params if preset.required(name))
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
