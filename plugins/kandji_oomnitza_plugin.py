"""Registers this project's operator extra links with Airflow (the UI shows them as task buttons)."""

from airflow.plugins_manager import AirflowPlugin

from kandji_oomnitza.operators.links import KandjiDeviceLink, OomnitzaAssetLink, OomnitzaRecordsLink


class KandjiOomnitzaPlugin(AirflowPlugin):
    name = "kandji_oomnitza"
    operator_extra_links = [OomnitzaRecordsLink(), KandjiDeviceLink(), OomnitzaAssetLink()]  # noqa: RUF012 - the plugin API
