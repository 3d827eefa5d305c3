"""`make run`: Airflow standalone with this project's DAGs, and (unless real tenants are configured)
the Kandji and Oomnitza emulators with a seeded fleet. State lives in .airflow/ (git-ignored).

Real tenants: set both connections before `make run`, either as Airflow connection variables
(AIRFLOW_CONN_KANDJI_DEFAULT, AIRFLOW_CONN_OOMNITZA_DEFAULT, JSON) or with the shorthand variables
KANDJI_API_URL + KANDJI_API_TOKEN and OOMNITZA_URL + OOMNITZA_API_TOKEN. Then no emulator starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("SANDBOX_HOME", ROOT / ".airflow"))
PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))
KANDJI_PORT = int(os.environ.get("KANDJI_EMULATOR_PORT", "8181"))
OOMNITZA_PORT = int(os.environ.get("OOMNITZA_EMULATOR_PORT", "8282"))
DEVICES = int(os.environ.get("SANDBOX_DEVICES", "300"))
KANDJI_TOKEN = "sandbox-kandji-token"  # noqa: S105 - the emulator's own, not a secret
OOMNITZA_TOKEN = "sandbox-oomnitza-token"  # noqa: S105


def airflow_env() -> dict[str, str]:
    return dict(
        os.environ,
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__API__PORT=str(PORT),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{PORT}/execution/",
        # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )


def real_connections(env: dict[str, str]) -> bool:
    """Use real tenants when both connections are configured; fill them from the shorthand variables."""
    if env.get("KANDJI_API_URL") and env.get("KANDJI_API_TOKEN"):
        env.setdefault(
            "AIRFLOW_CONN_KANDJI_DEFAULT",
            json.dumps(
                {"conn_type": "http", "host": env["KANDJI_API_URL"], "password": env["KANDJI_API_TOKEN"]}
            ),
        )
    if env.get("OOMNITZA_URL") and env.get("OOMNITZA_API_TOKEN"):
        env.setdefault(
            "AIRFLOW_CONN_OOMNITZA_DEFAULT",
            json.dumps(
                {"conn_type": "http", "host": env["OOMNITZA_URL"], "password": env["OOMNITZA_API_TOKEN"]}
            ),
        )
    return bool(env.get("AIRFLOW_CONN_KANDJI_DEFAULT") and env.get("AIRFLOW_CONN_OOMNITZA_DEFAULT"))


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Each child leads its own process group, so stopping it stops everything it started
    # (airflow standalone runs the scheduler, dag processor, triggerer and API server as children).
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)


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


def wait_for(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {seconds:.0f}s")


def start_emulators(env: dict[str, str]) -> list[subprocess.Popen]:
    kandji_url, oomnitza_url = f"http://127.0.0.1:{KANDJI_PORT}", f"http://127.0.0.1:{OOMNITZA_PORT}"
    state = HOME / "oomnitza-state.json"
    fresh = not state.exists()
    procs = [
        start(
            [
                sys.executable,
                "-m",
                "include.emulators.kandji",
                "--port",
                str(KANDJI_PORT),
                "--devices",
                str(DEVICES),
                "--token",
                KANDJI_TOKEN,
            ],
            env,
        ),
        start(
            [
                sys.executable,
                "-m",
                "include.emulators.oomnitza",
                "--port",
                str(OOMNITZA_PORT),
                "--token",
                OOMNITZA_TOKEN,
                "--state-file",
                str(state),
            ],
            env,
        ),
    ]
    wait_for(f"{kandji_url}/_emulator/summary")
    wait_for(f"{oomnitza_url}/?format=json")
    if fresh:
        # The users integration is "update only": Oomnitza must already know some users for it to update.
        users = requests.get(f"{kandji_url}/_emulator/users", timeout=30).json()
        known = [{"email": u["email"], "full_name": u["name"]} for u in users[::2]]
        requests.post(f"{oomnitza_url}/_emulator/records/users", json=known, timeout=30).raise_for_status()
    env["AIRFLOW_CONN_KANDJI_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": kandji_url, "password": KANDJI_TOKEN}
    )
    env["AIRFLOW_CONN_OOMNITZA_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": oomnitza_url, "login": "kandji-integration", "password": OOMNITZA_TOKEN}
    )
    return procs


def sample_serial() -> str:
    try:
        devices = requests.get(f"http://127.0.0.1:{KANDJI_PORT}/_emulator/devices", timeout=10).json()
        return next(d["serial_number"] for d in devices if d["platform"] == "Mac")
    except (requests.RequestException, StopIteration, ValueError):
        return "<a serial number from Kandji>"


def print_welcome(use_real: bool) -> None:
    serial = sample_serial()
    password_file = HOME / "simple_auth_manager_passwords.json.generated"
    tenants = (
        " Tenants:         your real Kandji and Oomnitza (from the environment)\n"
        if use_real
        else f" Kandji emulator: http://127.0.0.1:{KANDJI_PORT} ({DEVICES} devices)\n"
        f" Oomnitza:        http://127.0.0.1:{OOMNITZA_PORT}/  (what landed: assets, software, users, runs)\n"
    )
    print(
        f"""
==========================================================================================
 Airflow is up:   http://localhost:{PORT}
 Login:           admin / password in {password_file}
{tenants}
 Three things to try:
  1. Integrations (left-hand navigation, or http://localhost:{PORT}/plugin/integrations): open
     "Kandji Devices and Software", untick Dry run, press Run now; then open the Oomnitza page above.
  2. DAG "Kandji Users" (kandji_users) > Trigger. Update only: the users Oomnitza knows are updated,
     the rest are listed in the run's error log (the report task's log says where).
  3. DAG "Kandji Lock Device" (kandji_preset_lock_device) > Trigger with serial_number {serial}.
     The unlock PIN stays in Kandji; the log says where to read it.

 Stop everything: Ctrl-C
==========================================================================================
""",
        flush=True,
    )


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # `kill` stops everything too, like Ctrl-C; SIGINT is set explicitly because a shell starts
    # background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    for stopping_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping_signal, _stop_on_signal)
    HOME.mkdir(exist_ok=True)
    env = airflow_env()
    children: list[subprocess.Popen] = []
    try:
        use_real = real_connections(env)
        if not use_real:
            children += start_emulators(env)
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["airflow", "pools", "set", "kandji_api", "4", "Tasks that call the Kandji API (one tenant rate limit)"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        children.append(start(["airflow", "standalone"], env))
        wait_for(f"http://localhost:{PORT}/api/v2/monitor/health", seconds=180)
        print_welcome(use_real)
        while all(child.poll() is None for child in children):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
