"""The test harness's plain parts: where things are, the session's tokens, and small helpers every kind of
test uses. Fixtures are in ``tests/conftest.py``; tests import from here, never from conftest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.services import free_port  # noqa: F401 - the ports of servers a test starts

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
AIRFLOW_HOME = Path(os.environ["AIRFLOW_HOME"])  # the session's own, made by conftest before Airflow loads
SEEN_PINS: list[str] = []  # unlock PINs the emulators issued during the session (tests add them)


def service(name: str) -> str:
    """Where `make test` put a service (``scripts/services.py``: PostgreSQL, Redis, Chromium); under a
    plain ``pytest``, one already running or installed; else the test is skipped with the reason and fix."""
    from scripts import services

    key = services.PREFIX + name.upper()
    if os.environ.get(key):
        return os.environ[key]
    if os.environ.get(key + "_MISSING"):
        pytest.skip(f"{name} is not available: {os.environ[key + '_MISSING']}")
    found = {"postgresql": services.find_postgres, "redis": services.find_redis,
             "chromium": services.find_chromium}[name.lower()]()  # fmt: skip
    if found.value:
        return found.value
    pytest.skip(f"{name} is not available: {found.missing}; `make test` provides it")


@dataclass
class DagRunResult:
    """What a finished ``dag.test()`` run left behind: its state, task states, XComs and log text."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)  # task id -> attempts it took
    log: str = ""

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms[(task_id, key)]


KANDJI_TOKEN = "test-kandji-token-5f1c2a"
OOMNITZA_TOKEN = "test-oomnitza-token-9b7e4d"


def secrets_in(text: str) -> list[str]:
    """The test session's tokens that ``text`` contains."""
    return [secret for secret in (KANDJI_TOKEN, OOMNITZA_TOKEN) if secret in text]


def as_text(value: Any) -> str:
    """Everything a value holds, as text: DataFrames in full (their repr shows a few rows only)."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.to_csv()
    if isinstance(value, dict):
        return "\n".join(f"{as_text(k)}={as_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return "\n".join(as_text(v) for v in value)
    return str(value)


def oomnitza_assets(admin) -> dict[str, dict]:
    """The assets in the Oomnitza emulator by serial number, each with its software as ``_software``."""
    state = admin.get("state")
    return {
        a["serial_number"]: a | {"_software": state["software"].get(a["equipment_id"])}
        for a in state["records"]["assets"].values()
    }


def days_ago(days: float) -> str:
    """A Connector Sync Time ``days`` before now, as the integrations write it."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def patch_record(oomnitza_emulator, kind: str, ident: str, changes: dict) -> None:
    """An edit through Oomnitza's own REST API, as a person or another tool would make it."""
    answer = requests.patch(
        f"{oomnitza_emulator.url}/api/v3/{kind}/{ident}",
        json=changes,
        headers={"Authorization2": OOMNITZA_TOKEN},
        timeout=10,
    )
    answer.raise_for_status()
