"""common/airflow_backports.py: the Test button's port fix, applied only where and when it is needed."""

from __future__ import annotations

import subprocess
import sys


def test_the_port_fix_applies_only_in_the_api_server_and_only_to_airflow_3_3_2():
    code = """
import sys
from kandji_oomnitza.common.airflow_backports import backport_test_connection_port_fix
assert backport_test_connection_port_fix() is False  # not an API server: nothing to patch
assert "airflow.api_fastapi.core_api.routes.public.connections" not in sys.modules
import airflow.api_fastapi.app  # what the API server has loaded when it loads plugins
from airflow.api_fastapi.core_api.routes.public import connections as route
assert route._same_endpoint(0, None) is False  # Airflow 3.3.2: a port of 0 is "another port"
assert backport_test_connection_port_fix() is True
assert route._same_endpoint(0, None) and route._same_endpoint("", None) and route._same_endpoint(None, None)
assert not route._same_endpoint(8443, None) and not route._same_endpoint("evil.example", "acme.example")
assert backport_test_connection_port_fix() is False  # once
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
