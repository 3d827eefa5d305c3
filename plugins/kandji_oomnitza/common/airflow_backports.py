"""Fixes from Airflow itself that this project needs before they are released.

- apache/airflow#73298 (merged 2026-09-17, after 3.3.2): the connection list's Test button sends
  ``port: 0`` for a connection without a port, and Airflow 3.3.2's API then refuses the test ("The host
  or port to test differs from the stored connection") for every such connection, of any type. The fix
  treats a port of 0 as no port when comparing. Applied only in the API server, only to Airflow 3.3.2
  and earlier, and only while the function still has the shape the fix expects; remove it once the
  pinned Airflow includes the fix.
"""

from __future__ import annotations

import sys

from packaging.version import Version

FIXED_AFTER = Version("3.3.2")


def backport_test_connection_port_fix() -> bool:
    """Patch the connections route's endpoint comparison in an API server process; return whether it did."""
    if "airflow.api_fastapi.app" not in sys.modules:  # not the API server: nothing serves that route here
        return False
    from airflow import __version__

    if Version(__version__) > FIXED_AFTER:
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
