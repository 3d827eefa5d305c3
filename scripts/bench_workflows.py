"""The workflows at scale, for `make bench` (scenario ``workflows_100_10k_assets``): 100 workflow files
polling one Oomnitza of 10,000 assets, on the `make run` sandbox (the real DAG processor, scheduler and
triggerer), with the bench's latency on every emulator request.

Each workflow watches the same field (``notes``) for a value of its own, polling every ``POLL`` seconds.
Once every watcher has made its first poll, ``CHANGES`` assets get one workflow's value each, a few
seconds apart (so the changes land at every phase of the poll); for each, the time from the edit to the
workflow's run (Airflow's ``queued_at``) is measured. Oomnitza's reads are counted by its emulator: the
reads the 100 watchers make per poll (one read group, so one read, whatever the number of workflows).

    python scripts/bench_workflows.py        # prints one JSON row (bench.py runs it as a scenario)
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from scripts.services import free_port  # noqa: E402

NAME = "workflows_100_10k_assets"
WORKFLOWS = int(os.environ.get("BENCH_WORKFLOWS", "100"))
ASSETS = int(os.environ.get("BENCH_WORKFLOW_ASSETS", "10000"))
POLL = float(os.environ.get("BENCH_WORKFLOW_POLL", "30"))
CHANGES = int(os.environ.get("BENCH_WORKFLOW_CHANGES", "50"))
LATENCY_MS = float(os.environ.get("LATENCY_MS", "50"))
FIELD = "notes"
VALUE = "bench-case-{:03d}"
PREFIX = "bench_watch_"


def workflow_file(number: int) -> str:
    return f"""name: Bench watcher {number}
enabled: true
trigger:
  conditions:
    - field: {FIELD}
      equals: {VALUE.format(number)}
  poll_interval: {POLL:g}s
action:
  preset: lock_device
approval:
  mode: required
"""


def wait(what: str, check, seconds: float, every: float = 1.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    raise SystemExit(f"{NAME}: gave up after {seconds:.0f}s waiting for {what}")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    folder = work / "workflows"
    folder.mkdir()
    for number in range(WORKFLOWS):
        (folder / f"{PREFIX}{number:03d}.yaml").write_text(workflow_file(number))
    ports = {name: free_port() for name in ("airflow", "kandji", "oomnitza")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "SANDBOX_HOME": str(work / "home"),
        "SANDBOX_DEVICES": "200",
        "SANDBOX_WORKFLOW_POLL": f"{POLL:g}s",
        "SANDBOX_EXTRA_WORKFLOWS": str(folder),
        "AIRFLOW_PORT": str(ports["airflow"]),
        "KANDJI_EMULATOR_PORT": str(ports["kandji"]),
        "OOMNITZA_EMULATOR_PORT": str(ports["oomnitza"]),
    }
    base = f"http://127.0.0.1:{ports['airflow']}"
    oomnitza = f"http://127.0.0.1:{ports['oomnitza']}"
    log = work / "sandbox.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        sandbox = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_sandbox.py")],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        wait("the sandbox", lambda: "Airflow is up" in log.read_text() or sandbox.poll() is not None, 600)
        if sandbox.poll() is not None:
            raise SystemExit(f"{NAME}: the sandbox did not start:\n{log.read_text()[-3000:]}")
        password = json.loads((work / "home" / "simple_auth_manager_passwords.json.generated").read_text())
        api = requests.Session()
        token = api.post(
            f"{base}/auth/token", json={"username": "admin", "password": password["admin"]}, timeout=60
        ).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        # 10,000 assets, as a person's Oomnitza holds them; then the bench's latency on every request.
        for start in range(0, ASSETS, 2000):
            chunk = [
                {"serial_number": f"BENCH{i:07d}", "device_name": f"Bench asset {i}"}
                for i in range(start, min(start + 2000, ASSETS))
            ]
            requests.post(f"{oomnitza}/_emulator/records/assets", json=chunk, timeout=300).raise_for_status()
        assets = list(requests.get(f"{oomnitza}/_emulator/state", timeout=300).json()["records"]["assets"])
        for url in (oomnitza, f"http://127.0.0.1:{ports['kandji']}"):
            requests.put(
                f"{url}/_emulator/faults", json={"latency_ms": LATENCY_MS}, timeout=60
            ).raise_for_status()

        def dag_count() -> int:
            listed = api.get(f"{base}/api/v2/dags", params={"dag_id_pattern": PREFIX, "limit": 1}, timeout=60)
            return listed.json().get("total_entries", 0) if listed.status_code == 200 else 0

        wait(f"{WORKFLOWS} workflow DAGs", lambda: dag_count() >= WORKFLOWS, 600, every=3)
        triggerer = work / "home" / "logs" / "components" / "triggerer.log"
        wait(
            "every watcher's first poll",
            lambda: (
                sum(
                    f"Workflow kandji_workflow_{PREFIX}" in line and ": first poll" in line
                    for line in triggerer.read_text(errors="replace").splitlines()
                )
                >= WORKFLOWS
            ),
            600,
            every=3,
        )
        requests.delete(f"{oomnitza}/_emulator/requests", timeout=60).raise_for_status()
        window_start = time.time()
        chosen = random.Random(7).sample(range(WORKFLOWS), min(CHANGES, WORKFLOWS))
        changes = []
        for asset, number in zip(assets, chosen, strict=False):
            requests.post(
                f"{oomnitza}/_emulator/assets/{asset}", json={FIELD: VALUE.format(number)}, timeout=60
            ).raise_for_status()
            changes.append((number, time.time()))
            time.sleep(random.Random(number).uniform(0.5, 2.5))

        def queued(number: int) -> float | None:
            runs = api.get(
                f"{base}/api/v2/dags/kandji_workflow_{PREFIX}{number:03d}/dagRuns",
                params={"limit": 5},
                timeout=60,
            ).json()["dag_runs"]
            times = [datetime.fromisoformat(r["queued_at"]).timestamp() for r in runs if r.get("queued_at")]
            return min(times) if times else None

        latencies = []
        for number, changed_at in changes:
            at = wait(f"the run of workflow {number}", lambda n=number: queued(n), POLL * 4 + 120, every=2)
            latencies.append(max(0.0, at - changed_at))
        window = time.time() - window_start
        reads = [
            r
            for r in requests.get(f"{oomnitza}/_emulator/requests", timeout=60).json()
            if r["method"] == "GET"
            and r["path"] == "/api/v3/assets"
            and VALUE.format(0)[:-3] in json.dumps(r)
        ]
        polls = max(1, round(window / POLL))
        return {
            "scenario": NAME,
            "state": "success" if p95(latencies) <= POLL + 10 else "slow",
            "workflows": WORKFLOWS,
            "assets": ASSETS,
            "changes": len(latencies),
            "poll_interval_seconds": POLL,
            "p50_latency_seconds": round(sorted(latencies)[len(latencies) // 2], 1),
            "p95_latency_seconds": round(p95(latencies), 1),
            "max_latency_seconds": round(max(latencies), 1),
            "oomnitza_reads_per_poll": round(len(reads) / polls, 2),
            "oomnitza_reads": len(reads),
            "polls": polls,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        sandbox.send_signal(signal.SIGTERM)
        try:
            sandbox.wait(timeout=120)
        except subprocess.TimeoutExpired:
            sandbox.kill()


if __name__ == "__main__":
    print("BENCH " + json.dumps(main()))
