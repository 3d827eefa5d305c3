"""Fixes from Airflow itself that this project needs before they are released.

- apache/airflow#73298 (merged 2026-09-17, after 3.3.2): the connection list's Test button sends
  ``port: 0`` for a connection without a port, and Airflow 3.3.2's API then refuses the test ("The host
  or port to test differs from the stored connection") for every such connection, of any type. The fix
  treats a port of 0 as no port when comparing. Applied only to Airflow 3.3.2 and earlier, only while the
  function still has the shape the fix expects, and only in the API server: the plugin registers
  ``BackportsMiddleware`` as a root middleware, which only the API server's core app builds (when it
  starts). Importing the plugin elsewhere (the scheduler, a task, ``dag.test()``'s in-process execution
  API) imports none of the API's routes. Remove it once the pinned Airflow includes the fix.
"""

from __future__ import annotations

from typing import Any

FIXED_AFTER = "3.3.2"


def backport_test_connection_port_fix() -> bool:
    """Patch the connections route's endpoint comparison; return whether it did. Imports the API's
    connection routes: call it in the API server only (``BackportsMiddleware`` does)."""
    from airflow import __version__
    from packaging.version import Version

    if Version(__version__) > Version(FIXED_AFTER):
        return False
    from airflow.api_fastapi.core_api.routes.public import connections as route

    original = getattr(route, "_same_endpoint", None)
    if original is None or getattr(original, "backported", False):
        return False

    def _same_endpoint(requested, stored) -> bool:
        def normal(value):
            return None if value is None or value == "" or value == 0 else value

        return normal(requested) == normal(stored)

    _same_endpoint.backported = True  # type: ignore[attr-defined]
    route._same_endpoint = _same_endpoint
    return True


class BackportsMiddleware:
    """A pass-through ASGI middleware whose only job is to apply the backports where they belong: the API
    server builds its root middlewares (from plugins' ``fastapi_root_middlewares``) when it starts, before
    it serves any request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        backport_test_connection_port_fix()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
