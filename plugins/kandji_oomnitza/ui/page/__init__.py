"""The Integrations page (an Airflow UI plugin). See ``app.py``."""

from __future__ import annotations

from typing import Any

URL_PREFIX = "/kandji-oomnitza"


class IntegrationsPageApp:
    """The page's ASGI app, built on its first request.

    Every Airflow component loads plugins (workers on each task start), but only the API server serves
    this app; building it imports Airflow's API security stack (about half a second), so it waits.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            from kandji_oomnitza.ui.page.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)
