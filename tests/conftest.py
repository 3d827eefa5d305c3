"""Test harness: an isolated Airflow per test session, a real metadata DB, and helpers to run DAGs.

Environment is set at import time, before anything imports Airflow, because Airflow reads its
configuration once on import. ``AIRFLOW__CORE__UNIT_TEST_MODE`` is never set: it would load Airflow's
own test configuration and make the tests diverge from production.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="kandji-oomnitza-airflow-home-"))

os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        # The workflows' state is sealed in the tests as in a deployment (common/seal.py).
        "AIRFLOW__KANDJI_OOMNITZA__STATE_SEAL_KEY": "a-seal-key-for-the-tests-only",
    }
)
# Mirror production: Astro puts the project root on PYTHONPATH, Airflow puts plugins/ on sys.path.
for path in (ROOT / "plugins", ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p
)

from helpers.harness import (  # noqa: E402 - after the environment Airflow reads on import
    ARTIFACTS,
    KANDJI_TOKEN,
    OOMNITZA_TOKEN,
    SEEN_PINS,
    DagRunResult,
    as_text,
    secrets_in,
    service,
)
from helpers.sandbox import Sandbox  # noqa: E402
from helpers.waiting import wait_until  # noqa: E402
from helpers.workflow_runs import runs_of, triggerer_log  # noqa: E402


def freeze_what_is_loaded() -> None:
    """Move every object alive now out of the garbage collector's sight, as Airflow's own DAG processor and
    LocalExecutor do before they fork: a test worker holds Airflow, its in-process API and pandas (about a
    million objects), and every full collection would walk them all again. Freezing is for what lives as
    long as the worker (modules, classes); collected first, so no garbage is frozen."""
    gc.collect()
    gc.freeze()


def pytest_sessionstart(session) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # once per test session, before any worker starts
        import shutil

        shutil.rmtree(ARTIFACTS / "reliability", ignore_errors=True)
    import pandas  # noqa: F401 - what every DAG run imports, loaded once before the freeze
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401
    from airflow.models.xcom import XComModel  # noqa: F401

    freeze_what_is_loaded()


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


frozen_after_first_run: list[bool] = []


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
        if not frozen_after_first_run:
            # The first run loaded the in-process execution API (Cadwyn's routes, schemas): freeze those too.
            frozen_after_first_run.append(True)
            freeze_what_is_loaded()
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
@pytest.fixture(scope="session")
def kandji_process():
    from dev.emulators.client import EmulatorProcess

    process = EmulatorProcess("dev.emulators.kandji", "--devices", "10", "--token", KANDJI_TOKEN)
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
    from dev.emulators.client import EmulatorProcess

    state = tmp_path_factory.mktemp("oomnitza") / "state.json"
    process = EmulatorProcess("dev.emulators.oomnitza", "--token", OOMNITZA_TOKEN, "--state-file", str(state))
    process.state_file = state
    yield process
    process.stop()


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
    from helpers.hostile import CaptureServer

    server = CaptureServer()
    yield server
    server.stop()


# -- secrets never leak: a scan over everything the test session wrote ----------------------------


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
@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """One `make run` sandbox for this worker's end-to-end tests that need the real scheduler. The tests
    using it form ``SANDBOX_GROUPS`` groups (``pytest_collection_modifyitems``), each on one worker under
    pytest-xdist, so at most that many sandboxes start, side by side; a worker starting one more means the
    grouping broke, and fails loudly instead."""
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):
        claims = tmp_path_factory.getbasetemp().parent / "sandboxes-started"
        claims.mkdir(exist_ok=True)
        (claims / worker).touch()
        started = sorted(p.name for p in claims.iterdir())
        if len(started) > len(SANDBOX_GROUPS):
            pytest.fail(
                f"sandboxes were started by workers {', '.join(started)}: more than the {len(SANDBOX_GROUPS)} "
                "groups of tests using one; the tests are no longer grouped by sandbox (--dist loadgroup)"
            )
    # Besides the admin: alice and bob (role user: may trigger and answer approvals assigned to them) and
    # otto (role op: may also post asset events), for the workflows' forgery tests.
    # Where the notify blocks of the tests' own settings files send (connection kandji_alerts: a webhook
    # on loopback), and a Kandji that answers after 15 seconds, then 401 (connection kandji_watched, read
    # by tests/fixtures/integrations/kandji_users_watched.yaml: a run that misses its deadline, then fails).
    from helpers.alerts import AlertSink
    from helpers.hostile import CaptureServer

    alerts = AlertSink()
    slow_kandji = CaptureServer(
        answer=(401, "application/json", b'{"detail": "Incorrect authentication credentials."}'), delay=15
    )
    running = Sandbox(
        tmp_path_factory.mktemp("sandbox"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,alice:user,bob:user,otto:op",
        SANDBOX_EXTRA_INTEGRATIONS=str(ROOT / "tests" / "fixtures" / "integrations"),
        AIRFLOW_CONN_KANDJI_ALERTS=json.dumps(
            {"conn_type": "apprise", "extra": {"config": [{"path": alerts.webhook_url("sandbox")}]}}
        ),
        AIRFLOW_CONN_KANDJI_WATCHED=json.dumps(
            {"conn_type": "kandji", "host": slow_kandji.url, "password": "a-token-kandji-refuses"}
        ),
    )
    running.alerts, running.slow_kandji = alerts, slow_kandji
    yield running
    running.stop()
    alerts.stop()
    slow_kandji.stop()


# The tests using the sandbox, in groups of about equal length, each group on one worker with a sandbox of
# its own (the groups share nothing): the first holds the workflows and the deadline test, the second the
# browser and the sandbox's own tests.
SANDBOX_GROUPS = {"sandbox-workflows": ("tests/e2e/workflows/", "tests/e2e/integrations/"), "sandbox-ui": ()}
# Longest first, so no long test starts last and holds up the end of the run (xdist hands each worker the
# next unit in collection order): the sandbox groups, then the other long groups and modules.
SLOW_FIRST = (
    "sandbox-workflows",
    "sandbox-ui",
    "tests/e2e/integrations/test_reliability.py",
    "tests/e2e/platform/test_wheel_deploy.py",
    "tests/e2e/platform/test_distributed.py",
    "tests/e2e/integrations/test_delta.py",
    "tests/e2e/platform/",
    "tests/e2e/",
    "tests/emulated/",
)


def sandbox_group(item) -> str:
    path = item.nodeid.split("::", 1)[0]
    return next((g for g, folders in SANDBOX_GROUPS.items() if path.startswith(folders)), "sandbox-ui")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the marks
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``), the tests that use the `make run` sandbox run in
    ``SANDBOX_GROUPS``, each group on one worker; and the longest work is handed out first."""
    rank: dict[Any, int] = {}
    for item in items:
        group = None
        if "sandbox" in getattr(item, "fixturenames", ()):
            group = sandbox_group(item)
            item.add_marker(pytest.mark.xdist_group(group))
        key = group or item.nodeid
        rank[item] = next(
            (i for i, prefix in enumerate(SLOW_FIRST) if key.startswith(prefix)), len(SLOW_FIRST)
        )
    items.sort(key=rank.__getitem__)  # stable: within a rank, the collection's own order


@pytest.fixture(scope="module")
def fleet(sandbox):
    """Assets in the sandbox's Oomnitza (the devices integration, run for real), and the watcher's first
    poll done (so what the tests change counts as a record starting to match)."""
    before = len(runs_of(sandbox, "kandji_devices_and_software"))
    sandbox.api.post(
        f"{sandbox.base}/api/v2/dags/kandji_devices_and_software/dagRuns",
        json={"logical_date": None, "conf": {"dry_run": False}},
        timeout=30,
    ).raise_for_status()
    wait_until(
        "the devices integration",
        lambda: (
            (r := runs_of(sandbox, "kandji_devices_and_software"))
            and len(r) > before
            and r[-1]["state"] == "success"
        ),
        timeout=300,
        every=3,
    )
    wait_until(
        "the lock workflow's first poll",
        lambda: "Workflow kandji_workflow_lost_device_lock: first poll" in triggerer_log(sandbox),
        120,
    )
    assets = requests.get(f"{sandbox.oomnitza}/_emulator/state", timeout=30).json()["records"]["assets"]
    macs = [a for a in assets.values() if a.get("kandji_platform") == "Mac" and not a.get("status")]
    assert len(macs) >= 10, "the sandbox fleet has too few Macs for these tests"
    return macs
