"""`make run`: Airflow standalone with the project's DAGs and plugins, state kept in .airflow/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow"
PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))


def airflow_env() -> dict[str, str]:
    return dict(
        os.environ,
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__API__PORT=str(PORT),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )


def main() -> int:
    HOME.mkdir(exist_ok=True)
    env = airflow_env()
    print(f"Starting Airflow standalone (AIRFLOW_HOME={HOME}) ...", flush=True)
    print(f"  UI:       http://localhost:{PORT}", flush=True)
    print("  Login:    admin; the password is printed below by Airflow and kept in", flush=True)
    print(f"            {HOME / 'simple_auth_manager_passwords.json.generated'}", flush=True)
    print("  Stop:     Ctrl-C", flush=True)
    proc = subprocess.Popen(["airflow", "standalone"], env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
