"""This project as an Airflow provider: its connection types, ``kandji`` and ``oomnitza``, each with its
own form in Admin → Connections and a Test button that runs the hook's ``test_connection``.

Registered through the ``apache_airflow_provider`` entry point in ``pyproject.toml``.
Connections of type ``http`` with the same fields keep working: the hooks read host, password and
extras the same way whatever the type.
"""

from __future__ import annotations

from typing import Any

from kandji_oomnitza import __version__

PACKAGE_NAME = "kandji-oomnitza-airflow"


def _text(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


def _number(label: str, description: str, default: float, **schema: Any) -> dict[str, Any]:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["number", "null"], "default": default, **schema},
    }


KANDJI = {
    "hook-class-name": "kandji_oomnitza.hooks.kandji.KandjiHook",
    "hook-name": "Kandji",
    "connection-type": "kandji",
    "conn-fields": {
        "subdomain": _text(
            "Subdomain",
            "Instead of the API URL: the first label of it (acme in acme.api.kandji.io).",
            pattern="^[A-Za-z0-9-]*$",
        ),
        "region": {
            "label": "Region",
            "description": "With a subdomain: us (acme.api.kandji.io) or eu (acme.api.eu.kandji.io).",
            "schema": {"type": ["string", "null"], "enum": ["us", "eu", None], "default": "us"},
        },
        "requests_per_second": _number(
            "Requests per second", "Client-side pacing under Kandji's per-second limit (50).", 50, minimum=0
        ),
        "requests_per_hour": _number(
            "Requests per hour", "Client-side budget under Kandji's hourly limit (10,000).", 10000, minimum=0
        ),
        "timeout": _number("Timeout (seconds)", "How long one request may take.", 30, minimum=1),
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "API URL", "password": "API token"},
        "placeholders": {
            "host": "https://acme.api.kandji.io (or leave empty and give subdomain and region)",
            "password": "the token from Kandji: Settings > Access > API Token",
            "subdomain": "acme",
            "region": "us",
        },
    },
}

OOMNITZA = {
    "hook-class-name": "kandji_oomnitza.hooks.oomnitza.OomnitzaHook",
    "hook-name": "Oomnitza",
    "connection-type": "oomnitza",
    "conn-fields": {
        "timeout": _number("Timeout (seconds)", "How long one request may take.", 30, minimum=1),
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "Instance URL", "password": "API token", "login": "Integration user"},
        "placeholders": {
            "host": "https://acme.oomnitza.com",
            "password": "an API token (Configuration > Security > API tokens), sent as Authorization2",
            "login": "the Oomnitza user the integration acts as (optional; each run summary names it)",
        },
    },
}


CONFIG = {
    "kandji_oomnitza": {
        "description": "Where this provider's DAGs find their settings files (each also has an environment "
        "variable, which wins: KANDJI_OOMNITZA_INTEGRATIONS_DIR, KANDJI_OOMNITZA_WORKFLOWS_DIR, "
        "KANDJI_OOMNITZA_ASSET_DETAILS_MAPPING).",
        "options": {
            "integrations_folder": {
                "description": "The folder of integration files; by default include/integrations beside the "
                "DAGs folder (the Astro layout).",
                "version_added": "1.1.0",
                "type": "string",
                "example": "/opt/airflow/include/integrations",
                "default": None,
            },
            "workflows_folder": {
                "description": "The folder of workflow files; by default include/workflows beside the DAGs folder.",
                "version_added": "1.1.0",
                "type": "string",
                "example": "/opt/airflow/include/workflows",
                "default": None,
            },
            "state_seal_key": {
                "description": "The key the workflows seal their state and their sent: marks with in "
                "Airflow's asset state store (which anyone allowed to edit assets can write through the REST "
                "API), so a value this product did not write is refused. Set the same value on the triggerer and "
                "the workers; unset, a key derived from [core] fernet_key is used, and with neither nothing is "
                "sealed. Changing it makes each workflow take a new baseline once (it starts nothing then).",
                "version_added": "1.1.0",
                "type": "string",
                "sensitive": True,
                "example": None,
                "default": None,
            },
            "asset_details_mapping": {
                "description": "The assets integration file Get Asset Details maps devices with: a name in the "
                "integrations folder, or a path.",
                "version_added": "1.1.0",
                "type": "string",
                "example": "kandji_devices_and_software.yaml",
                "default": None,
            },
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads from the ``apache_airflow_provider`` entry point: everything
    this package gives Airflow. Its UI plugin (the page, the task buttons) is registered apart, through the
    ``airflow.plugins`` entry point (a plugin listed here too would be registered twice)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Kandji and Oomnitza",
        "description": "Kandji (Iru Endpoint Management) → Oomnitza integrations and Kandji device actions.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Kandji",
                "external-doc-url": "https://api-docs.kandji.io/",
                "tags": ["service"],
            },
            {
                "integration-name": "Oomnitza",
                "external-doc-url": "https://www.oomnitza.com/",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": "Kandji", "python-modules": ["kandji_oomnitza.hooks.kandji"]},
            {"integration-name": "Oomnitza", "python-modules": ["kandji_oomnitza.hooks.oomnitza"]},
        ],
        "operators": [
            {
                "integration-name": "Kandji",
                "python-modules": ["kandji_oomnitza.presets.operator", "kandji_oomnitza.workflows.operator"],
            },
            {"integration-name": "Oomnitza", "python-modules": ["kandji_oomnitza.integrations.operator"]},
        ],
        "sensors": [
            {"integration-name": "Kandji", "python-modules": ["kandji_oomnitza.integrations.newest_run"]}
        ],
        "triggers": [
            {"integration-name": "Oomnitza", "python-modules": ["kandji_oomnitza.workflows.trigger"]}
        ],
        "extra-links": [
            "kandji_oomnitza.hooks.links.OomnitzaRecordsLink",
            "kandji_oomnitza.hooks.links.KandjiDeviceLink",
            "kandji_oomnitza.hooks.links.OomnitzaAssetLink",
        ],
        "connection-types": [KANDJI, OOMNITZA],
        "config": CONFIG,
    }
