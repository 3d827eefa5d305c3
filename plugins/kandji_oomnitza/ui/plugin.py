"""This project's parts of the Airflow UI, as one Airflow plugin: the operator extra links (task buttons)
and the Integrations page (a FastAPI app served by the API server, listed in the navigation).

Registered through the ``airflow.plugins`` entry point of the installed package; the Astro layout's
``plugins/kandji_oomnitza_plugin.py`` registers it only where the package is not installed, so it is
never registered twice.
"""

from airflow.plugins_manager import AirflowPlugin

from kandji_oomnitza.common.airflow_backports import BackportsMiddleware
from kandji_oomnitza.hooks.links import KandjiDeviceLink, OomnitzaAssetLink, OomnitzaRecordsLink
from kandji_oomnitza.ui.page import URL_PREFIX, IntegrationsPageApp


class KandjiOomnitzaPlugin(AirflowPlugin):
    # Lists and dicts are the plugin API's own shape (RUF012 asks for ClassVar annotations).
    name = "kandji_oomnitza"
    operator_extra_links = [OomnitzaRecordsLink(), KandjiDeviceLink(), OomnitzaAssetLink()]  # noqa: RUF012
    fastapi_apps = [  # noqa: RUF012
        {"app": IntegrationsPageApp(), "url_prefix": URL_PREFIX, "name": "Kandji → Oomnitza integrations"}
    ]
    # Built by the API server only, when it starts: applies common/airflow_backports.py there.
    fastapi_root_middlewares = [  # noqa: RUF012
        {"middleware": BackportsMiddleware, "args": [], "kwargs": {}, "name": "kandji_oomnitza backports"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Integrations",
            "href": URL_PREFIX.lstrip("/") + "/",  # relative, so it works under a base_url sub-path
            "url_route": "integrations",  # shown inside the Airflow UI at /plugin/integrations
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
