"""``scripts/run_sandbox.py`` (`make run`) in a process of its own, for the end-to-end tests that need the
real scheduler, triggerer and API server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.harness import ROOT, free_port
from helpers.waiting import wait_until


class Sandbox:
    """``scripts/run_sandbox.py`` in a process of its own, on free loopback ports, with a small fleet;
    an admin API session on its Airflow."""

    # What a sandbox says when a port it was given was taken between the draw and its start (another
    # test's server drew it too): it is started again on other ports.
    PORT_TAKEN = ("is in use", "address already in use")
    STARTS = 3

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.extra_env = env
        from scripts import services

        self.postgres = os.environ.get(services.PREFIX + "POSTGRESQL")  # `make test`'s, else its own
        self.log_path = home / "sandbox.log"
        for attempt in range(1, self.STARTS + 1):
            if self._start():
                break
            taken = any(words in self.output().lower() for words in self.PORT_TAKEN)
            self.stop()
            if not taken or attempt == self.STARTS:
                pytest.fail("the sandbox did not start:\n" + self.output()[-3000:])
        self.password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[
            "admin"
        ]
        self.api = requests.Session()
        token = self.api.post(
            f"{self.base}/auth/token", json={"username": "admin", "password": self.password}, timeout=10
        ).json()["access_token"]
        self.api.headers["Authorization"] = f"Bearer {token}"

    def _start(self) -> bool:
        """Start ``scripts/run_sandbox.py`` on newly drawn ports; whether it came up ("Airflow is up")."""
        ports = {name: free_port() for name in ("airflow", "kandji", "oomnitza")}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "SANDBOX_HOME": str(self.home),
            "SANDBOX_DEVICES": "40",
            # Workflows poll every 5 seconds (the shortest a workflow file allows), the tests' extra workflow files run too, and a triggerer the
            # tests kill comes back (tests/e2e/workflows/test_workflows.py).
            "SANDBOX_WORKFLOW_POLL": "5s",
            "SANDBOX_EXTRA_WORKFLOWS": str(ROOT / "tests" / "fixtures" / "workflows"),
            "SANDBOX_RESTART": "triggerer",
            "AIRFLOW_PORT": str(ports["airflow"]),
            "KANDJI_EMULATOR_PORT": str(ports["kandji"]),
            "OOMNITZA_EMULATOR_PORT": str(ports["oomnitza"]),
            **self.extra_env,
        }
        if self.postgres:
            self.env["SANDBOX_POSTGRES"] = self.postgres
        self.ports = ports
        self.base = f"http://127.0.0.1:{ports['airflow']}"
        self.kandji = f"http://127.0.0.1:{ports['kandji']}"
        self.oomnitza = f"http://127.0.0.1:{ports['oomnitza']}"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_sandbox.py")],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # Up, or given up: "Airflow is up" is printed once every component is started and the DAGs are
        # parsed; a sandbox that exits first did not start.
        wait_until(
            "the sandbox to say 'Airflow is up'",
            lambda: "Airflow is up" in self.output() or self.process.poll() is not None,
            timeout=240,
            every=1,
            seen=lambda: self.output()[-2000:],
        )
        return self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def login(self, user: str) -> requests.Session:
        """A REST API session as ``user`` (one of the simple auth manager's users of this sandbox)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        session = requests.Session()
        token = session.post(
            f"{self.base}/auth/token", json={"username": user, "password": passwords[user]}, timeout=10
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def get(self, path: str, **params: Any) -> Any:
        answer = self.api.get(f"{self.base}/api/v2/{path}", params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
        if self.postgres:
            from scripts import run_sandbox, services

            services.drop_database(self.postgres, run_sandbox.sandbox_database_name(self.home))

    def __getitem__(self, key: str) -> Any:  # the browser tests' older dict-style access
        return {"base": self.base, "password": self.password, "api": self.api, "kandji": self.kandji,
                "oomnitza": self.oomnitza}[key]  # fmt: skip
