"""Start an emulator as a child process and steer it through its ``/_emulator/`` admin endpoints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """One emulator in its own process, on a free loopback port."""

    def __init__(self, module: str, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"{module} did not start: {line!r}")
        self.url = match.group(1)
        self.admin = EmulatorAdmin(self.url)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class EmulatorAdmin:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(
            method, f"{self.url}/_emulator/{path}", json=body, params=params, timeout=120
        )
        response.raise_for_status()
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, **params)

    def put(self, path: str, body: Any) -> Any:
        return self._call("PUT", path, body)

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, body if body is not None else {})

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("PATCH", path, body)

    def requests(self, path_pattern: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests (credentials never recorded), optionally filtered by path regex and method."""
        entries = self.get("requests")
        return [
            e
            for e in entries
            if (path_pattern is None or re.search(path_pattern, e["path"]))
            and (method is None or e["method"] == method)
        ]

    def clear_requests(self) -> None:
        self.delete("requests")

    def faults(self, **config: Any) -> Any:
        return self.put("faults", config)

    def clear_faults(self) -> Any:
        return self.put("faults", {})
