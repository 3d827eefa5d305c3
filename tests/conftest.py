"""Test harness: an isolated Airflow per test session, a real metadata DB, and helpers to run DAGs.

Environment is set at import time, before anything imports Airflow, because Airflow reads its
configuration once on import. ``AIRFLOW__CORE__UNIT_TEST_MODE`` is never set: it would load Airflow's
own test configuration and make the tests diverge from production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="kandji-oomnitza-airflow-home-"))
ARTIFACTS = ROOT / "artifacts"

os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    }
)
# Mirror production: Astro puts the project root on PYTHONPATH, Airflow puts plugins/ on sys.path.
for path in (ROOT / "plugins", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p
)


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


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A PostgreSQL server (JSON, see ``scripts/services.py``) the tests may create databases on."""
    return service("PostgreSQL")


@pytest.fixture(scope="session")
def chromium() -> str | None:
    """The browser's executable; None: Playwright's own download. Session-scoped, so a missing browser
    skips its tests before the (session-scoped) sandbox starts for them."""
    from scripts.services import PLAYWRIGHT_CHROMIUM

    found = service("Chromium")
    return None if found == PLAYWRIGHT_CHROMIUM else found


def free_port() -> int:
    """A loopback port nothing listens on right now (for servers a test starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's metadata DB once; return AIRFLOW_HOME."""
    from airflow.utils.db import initdb

    initdb()
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"), safe_mode=False)


@pytest.fixture
def airflow_connections(monkeypatch):
    """Set Airflow connections through ``AIRFLOW_CONN_<ID>`` JSON variables for one test."""

    def set_connection(conn_id: str, *, conn_type: str = "http", **fields: Any) -> None:
        value = {"conn_type": conn_type, **{k: v for k, v in fields.items() if v is not None}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))

    return set_connection


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


@pytest.fixture
def run_dag(airflow_db, dag_bag, capfd, caplog):
    """Run a DAG with ``dag.test(run_conf=...)`` and read back states, XComs and the logs it printed.

    ``dag.test()`` runs each task in-process: task logs reach Python logging (pytest's ``caplog``) and
    Airflow's own structured logs reach stdout/stderr, so both are collected; the streams are echoed
    back for pytest's failure report.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    def run(dag: Any, conf: dict | None = None, **test_kwargs: Any) -> DagRunResult:
        """``dag`` is a DAG id from the project's DAG folder, or a DAG object built by the test.

        ``dag.test()`` needs the DAG id to exist in the DAG folder's bundle; a DAG object built by a
        test (e.g. from a changed integration file) runs its own tasks under that id.
        """
        if isinstance(dag, str):
            # A fresh parse per run: dag.test() leaves the run's conf in the DAG object's params.
            from airflow.dag_processing.dagbag import DagBag

            fresh = DagBag(dag_folder=str(ROOT / "dags"), safe_mode=False)
            assert dag in fresh.dags, f"{dag} not in dags/; import errors: {fresh.import_errors}"
            dag = fresh.dags[dag]
        dag_id = dag.dag_id
        for task in dag.tasks:  # keep Airflow's retries, without minutes of waiting between attempts
            task.retry_delay = timedelta(seconds=0)
            task.retry_exponential_backoff = 0.0
        capfd.readouterr()
        caplog.clear()
        dag_run = dag.test(run_conf=conf, **test_kwargs)
        captured = capfd.readouterr()
        sys.stdout.write(captured.out)
        sys.stderr.write(captured.err)
        with create_session() as session:
            instances = dag_run.get_task_instances(session=session)
            task_states = {
                ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
                for ti in instances
            }
            tries = {ti.task_id: ti.try_number for ti in instances if ti.map_index < 0}
            rows = session.query(XComModel).filter(
                XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id
            )
            xcoms = {(x.task_id, x.key): XComModel.deserialize_value(x) for x in rows}
        # Secrets stay secret: no run may print a token or store one in XCom (DataFrames read whole).
        text = caplog.text + captured.out + captured.err + as_text(xcoms)
        assert not secrets_in(text), f"a token leaked into the logs or XComs of {dag_id}"
        return DagRunResult(
            dag_id=dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states=task_states,
            xcoms=xcoms,
            tries=tries,
            log=caplog.text + captured.out + captured.err,
        )

    return run


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- emulators ------------------------------------------------------------------------------------
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


@pytest.fixture(scope="session")
def kandji_process():
    from include.emulators.client import EmulatorProcess

    process = EmulatorProcess("include.emulators.kandji", "--devices", "10", "--token", KANDJI_TOKEN)
    yield process
    process.stop()


@pytest.fixture
def kandji_emulator(kandji_process, airflow_connections):
    """The Kandji emulator, reset to a fresh 120-device fleet, with ``kandji_default`` pointing at it."""
    admin = kandji_process.admin
    admin.post(
        "reset",
        {
            "devices": 120,
            "users": 80,
            "seed": 42,
            "tokens": [KANDJI_TOKEN],
            "rate_limit": {"per_second": None, "per_hour": None},
        },
    )
    airflow_connections(
        "kandji_default", host=kandji_process.url, password=KANDJI_TOKEN, extra={"backoff_seconds": 0.01}
    )
    return admin


@pytest.fixture(scope="session")
def oomnitza_process(tmp_path_factory):
    from include.emulators.client import EmulatorProcess

    state = tmp_path_factory.mktemp("oomnitza") / "state.json"
    process = EmulatorProcess(
        "include.emulators.oomnitza", "--token", OOMNITZA_TOKEN, "--state-file", str(state)
    )
    process.state_file = state
    yield process
    process.stop()


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


@pytest.fixture
def small_fleet(kandji_emulator):
    """A 30-device, 40-user Kandji fleet; its devices."""
    kandji_emulator.post(
        "reset", {"devices": 30, "users": 40, "seed": 11, "tokens": [KANDJI_TOKEN], "rate_limit": {}}
    )
    return kandji_emulator.get("devices")


@pytest.fixture
def oomnitza_emulator(oomnitza_process, airflow_connections):
    """The Oomnitza emulator, emptied, with ``oomnitza_default`` pointing at it."""
    admin = oomnitza_process.admin
    admin.post("reset", {"tokens": [OOMNITZA_TOKEN], "settings": {"polls_until_finished": 1}})
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        login="kandji-integration",
        password=OOMNITZA_TOKEN,
        extra={"backoff_seconds": 0.01},
    )
    return admin


@pytest.fixture
def bystander():
    """Another origin on loopback that records whatever reaches it (``tests/hostile.py``)."""
    from hostile import CaptureServer

    server = CaptureServer()
    yield server
    server.stop()


# -- secrets never leak: a scan over everything the test session wrote ----------------------------
SEEN_PINS: list[str] = []  # unlock PINs the emulators issued during the session (tests add them)


@pytest.fixture(scope="session", autouse=True)
def no_secret_anywhere(request):
    """After the whole session: no token and no Lock PIN in any file under the session's AIRFLOW_HOME
    (logs, reports), in any XCom, or in any rendered template field of the metadata DB."""
    yield
    if request.session.testsfailed:
        return  # a failing session reports its own failures; this scan guards the green ones
    import sqlite3

    tokens = [KANDJI_TOKEN, OOMNITZA_TOKEN]
    leaks = []
    for path in AIRFLOW_HOME.rglob("*"):
        if path.is_file() and not path.name.startswith("airflow.db") and path.stat().st_size < 50_000_000:
            text = path.read_bytes().decode("utf-8", "replace")
            leaks += [f"{path}: {s[:4]}…" for s in [*tokens, *SEEN_PINS] if s in text]
    database = AIRFLOW_HOME / "airflow.db"
    if database.exists():
        raw = database.read_bytes()  # the metadata DB file itself, every table and page
        leaks += [f"{database}: {s[:4]}…" for s in tokens if s.encode() in raw]
        with sqlite3.connect(database) as connection:
            checks = (
                # A 6-digit PIN would match by chance inside the hex-encoded DataFrames of the
                # integration DAGs, so PINs are looked for in the preset DAGs' XComs, where a leaked PIN
                # would land; tokens are looked for in every XCom, decoded (DataFrames read whole).
                ("SELECT value FROM xcom WHERE dag_id LIKE 'kandji_preset_%'", SEEN_PINS),
                ("SELECT rendered_fields FROM rendered_task_instance_fields", [*tokens, *SEEN_PINS]),
            )
            for query, secrets in checks:
                try:
                    blob = "\n".join(str(r[0]) for r in connection.execute(query).fetchall())
                except sqlite3.OperationalError:
                    continue
                leaks += [f"{query}: {s[:4]}…" for s in secrets if s in blob]
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            for row in session.query(XComModel).yield_per(200):
                found = secrets_in(as_text(XComModel.deserialize_value(row)))
                leaks += [f"XCom {row.dag_id}/{row.task_id}/{row.key}: {s[:4]}…" for s in found]
    assert not leaks, f"secrets leaked: {leaks}"


@pytest.fixture
def integration_dag_from(tmp_path):
    """Build an integration DAG from one of the shipped files with some settings changed; the DAG id
    stays the shipped one, so ``dag.test()`` finds it in the DAG folder's bundle."""
    import yaml

    from kandji_oomnitza.integrations.config import load_integration
    from kandji_oomnitza.integrations.dag import build_dag

    def build(dag_id: str, **changes: Any):
        data = yaml.safe_load((ROOT / "include" / "integrations" / f"{dag_id}.yaml").read_text())
        for key, value in changes.items():
            data[key] = (
                {**data[key], **value}
                if isinstance(value, dict) and isinstance(data.get(key), dict)
                else value
            )
        path = tmp_path / f"{dag_id}.yaml"
        path.write_text(yaml.safe_dump(data))
        return build_dag(dag_id, load_integration(path), path)

    return build


# -- the `make run` sandbox, with the real scheduler --------------------------------------------------
class Sandbox:
    """``scripts/run_sandbox.py`` in a process of its own, on free loopback ports, with a small fleet;
    an admin API session on its Airflow."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("airflow", "kandji", "oomnitza")}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "SANDBOX_HOME": str(home),
            "SANDBOX_DEVICES": "40",
            # Workflows poll every 5 seconds (the shortest a workflow file allows), the tests' extra workflow files run too, and a triggerer the
            # tests kill comes back (tests/e2e/test_workflows.py).
            "SANDBOX_WORKFLOW_POLL": "5s",
            "SANDBOX_EXTRA_WORKFLOWS": str(ROOT / "tests" / "fixtures" / "workflows"),
            "SANDBOX_RESTART": "triggerer",
            "AIRFLOW_PORT": str(ports["airflow"]),
            "KANDJI_EMULATOR_PORT": str(ports["kandji"]),
            "OOMNITZA_EMULATOR_PORT": str(ports["oomnitza"]),
            **env,
        }
        from scripts import services

        self.postgres = os.environ.get(services.PREFIX + "POSTGRESQL")  # `make test`'s, else its own
        if self.postgres:
            self.env["SANDBOX_POSTGRES"] = self.postgres
        self.ports = ports
        self.base = f"http://127.0.0.1:{ports['airflow']}"
        self.kandji = f"http://127.0.0.1:{ports['kandji']}"
        self.oomnitza = f"http://127.0.0.1:{ports['oomnitza']}"
        self.log_path = home / "sandbox.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_sandbox.py")],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 240
        while "Airflow is up" not in self.output():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                pytest.fail("the sandbox did not start:\n" + self.output()[-3000:])
            time.sleep(1)
        self.password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[
            "admin"
        ]
        self.api = requests.Session()
        token = self.api.post(
            f"{self.base}/auth/token", json={"username": "admin", "password": self.password}, timeout=10
        ).json()["access_token"]
        self.api.headers["Authorization"] = f"Bearer {token}"

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


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """One `make run` sandbox for the session's end-to-end tests that need the real scheduler. Under
    pytest-xdist every test using it runs on one worker (``pytest_collection_modifyitems``): a second
    worker starting one means that grouping broke, and fails loudly instead of starting two."""
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        claim = tmp_path_factory.getbasetemp().parent / "sandbox-started-by"
        try:
            with open(claim, "x") as first:
                first.write(worker)
        except FileExistsError:
            pytest.fail(
                f"the sandbox was already started by worker {claim.read_text()}, and {worker} would start "
                "another: the tests using it are no longer grouped on one worker (--dist loadgroup)"
            )
    # Besides the admin: alice and bob (role user: may trigger and answer approvals assigned to them) and
    # otto (role op: may also post asset events), for the workflows' forgery tests.
    running = Sandbox(
        tmp_path_factory.mktemp("sandbox"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,alice:user,bob:user,otto:op",
    )
    yield running
    running.stop()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``), every test that uses the `make run` sandbox runs on one
    worker, so the sandbox starts once."""
    for item in items:
        if "sandbox" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("sandbox"))
