"""Extra links on our tasks: the records in Oomnitza, the device in Kandji's web app.

Airflow 3 computes a link on the worker when the task finishes and stores it in XCom; the UI shows it
as a button on the task. Each link is registered by ``plugins/kandji_oomnitza_plugin.py``.
"""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink


def _pushed(ti_key, key: str):
    """A value the task pushed to XCom under ``key`` (the device id or serial it acted on)."""
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_one(
        key=key,
        task_id=ti_key.task_id,
        dag_id=ti_key.dag_id,
        run_id=ti_key.run_id,
        map_index=ti_key.map_index,
    )


class OomnitzaRecordsLink(BaseOperatorLink):
    """The Oomnitza list (assets or users) the task loaded into."""

    name = "Oomnitza records"

    def get_link(self, operator, *, ti_key) -> str:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        base = OomnitzaHook(operator.oomnitza_conn_id).base_url_checked
        return f"{base}/{operator.data_type}"


class KandjiDeviceLink(BaseOperatorLink):
    """The device's page in Kandji's web app (the API host without its ``api.`` label)."""

    name = "Device in Kandji"

    def get_link(self, operator, *, ti_key) -> str:
        from kandji_oomnitza.hooks.kandji import KandjiHook

        device_id = _pushed(ti_key, "device_id")
        if not device_id:
            return ""
        api = KandjiHook(operator.kandji_conn_id).api_base_url
        return f"{api.replace('.api.', '.', 1)}/devices/{device_id}"


class OomnitzaAssetLink(BaseOperatorLink):
    """The device's asset in Oomnitza, found by its serial number."""

    name = "Asset in Oomnitza"

    def get_link(self, operator, *, ti_key) -> str:
        from urllib.parse import quote

        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        serial = _pushed(ti_key, "serial_number")
        if not serial:
            return ""
        base = OomnitzaHook(operator.oomnitza_conn_id).base_url_checked
        return f"{base}/assets?filter={quote(f'serial_number eq {serial!r}')}"
