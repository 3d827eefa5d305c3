"""common/airflow_backports.py: the Test button's port fix, applied only where and when it is needed."""

from __future__ import annotations

import subprocess
import sys


def test_the_port_fix_applies_only_in_the_api_server_and_only_to_airflow_3_3_2():
    code = """
import sys
import kandji_oomnitza.ui.plugin  # what every Airflow component loads: it must import no API route
assert "airflow.api_fastapi.core_api.routes.public.connections" not in sys.modules
from fastapi import FastAPI
from airflow.api_fastapi.app import init_plugins
app = FastAPI()
init_plugins(app)  # as the API server's core app does; its root middlewares are built when it starts
from kandji_oomnitza.common.airflow_backports import BackportsMiddleware
assert any(m.cls is BackportsMiddleware for m in app.user_middleware), app.user_middleware
assert "airflow.api_fastapi.core_api.routes.public.connections" not in sys.modules
from airflow.api_fastapi.core_api.routes.public import connections as route
assert route._same_endpoint(0, None) is False  # Airflow 3.3.2: a port of 0 is "another port"
app.build_middleware_stack()  # what the server's first event (lifespan startup) does
assert route._same_endpoint(0, None) and route._same_endpoint("", None) and route._same_endpoint(None, None)
assert not route._same_endpoint(8443, None) and not route._same_endpoint("evil.example", "acme.example")
from kandji_oomnitza.common.airflow_backports import backport_test_connection_port_fix
assert backport_test_connection_port_fix() is False  # once
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
