"""Extra links on our tasks: the records in Oomnitza, the device in Kandji's web app.

Airflow 3 computes a link on the worker when the task finishes, from the operator that just ran, and
stores it in XCom; the UI shows it as a button on the task. So a link reads what the run set on its
operator (never an XCom that a failed run may not have pushed). Each link is registered by the UI
plugin (``ui/plugin.py``: the package's ``airflow.plugins`` entry point, or ``plugins/kandji_oomnitza_plugin.py``
where only the files were copied).
"""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink


class OomnitzaRecordsLink(BaseOperatorLink):
    """The Oomnitza list (assets or users) the task loaded into."""

    name = "Oomnitza records"

    def get_link(self, operator, *, ti_key) -> str:
        from kandji_oomnitza.hooks.oomnitza import OomnitzaHook

        base = OomnitzaHook(operator.oomnitza_conn_id).root_url()
        return f"{base}/{operator.data_type}"


class KandjiDeviceLink(BaseOperatorLink):
    """The device's page in Kandji's web app (the API host without its ``api.`` label)."""

    name = "Device in Kandji"

    def get_link(self, operator, *, ti_key) -> str:
        from kandji_oomnitza.hooks.kandji import KandjiHook

        device_id = getattr(operator, "device_id", None)  # set by the run; absent when it found no device
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

        serial = getattr(operator, "serial_number", None)
        if not serial:
            return ""
        base = OomnitzaHook(operator.oomnitza_conn_id).root_url()
        return f"{base}/assets?filter={quote(f'serial_number eq {serial!r}')}"
