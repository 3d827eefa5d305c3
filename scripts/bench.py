"""`make bench`: the real integration DAGs end to end against the emulators, with a fixed latency per
request, measured side by side in one run.

Per scenario: calls to Kandji and Oomnitza (counted by the emulators), wall time, peak memory of the
process doing the work, records per second; then ratios: per-device route ÷ automatic route, calls ÷
the lower bound, batched load ÷ one-record-per-request load; and each DAG file's parse time.

Scenarios (pick with SCENARIOS=a,b or a preset name):
  default  = devices_1k_{per_device,prism,prism_export,auto}, devices_1k_single_record_load,
             devices_10k_{per_device,prism,prism_export,auto}, users_10k,
             devices_10k_missing_1pct (when_missing: 100 of 10,100 Oomnitza assets gone from Kandji),
             devices_10k_delta_1pct (delta on: a full run, 100 devices renamed, the measured delta run)
  quick    = the 1k scenarios only
  large    = devices_100k_auto (opt-in: about 10M app rows)
  workflows = workflows_100_10k_assets (100 workflow files polling one Oomnitza of 10,000 assets, on the
             `make run` sandbox: change-to-run latency and Oomnitza reads per poll; scripts/bench_workflows.py)
Knobs: LATENCY_MS (50); SCENARIO_TIMEOUT (1800 s per scenario run); BENCH_MODE=executor (default: LocalExecutor, each task in its own process, as in
production) or in-process (plain dag.test(), every task in one process); PROFILE=py-spy (a flame graph of where the wall time goes) or PROFILE=memray
(what holds the memory at the peak: `python -m memray flamegraph bench-results/<scenario>.memray.bin`). Results go to bench-results/ (git-ignored): results.json, results.md, chart.png.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
from dev.emulators.client import EmulatorProcess  # noqa: E402

OUT = ROOT / "bench-results"
LATENCY_MS = float(os.environ.get("LATENCY_MS", "50"))
PROFILE = os.environ.get("PROFILE", "")  # "", "py-spy" or "memray"
# One scenario's run may take this long (the 10k per-device route takes about 10 minutes); past it the run
# is stopped with its process group, and the bench says which scenario hung instead of waiting forever
# (seen once: Airflow's LocalExecutor waiting at its end for a worker that never took its shutdown message).
SCENARIO_TIMEOUT = float(os.environ.get("SCENARIO_TIMEOUT", "1800"))
KANDJI_TOKEN, OOMNITZA_TOKEN = "bench-kandji", "bench-oomnitza"


@dataclass
class Scenario:
    name: str
    kind: str  # assets | users | workflows
    devices: int
    route: str = "auto"
    users: int = 0
    batch_size: int = 100
    missing: int = 0  # Oomnitza assets whose device left Kandji long ago (when_missing on, software off)
    delta_changed: int = 0  # delta on: a first full run, then this many devices change, then the measured run


def scenarios(selection: str) -> list[Scenario]:
    routes = ("per_device", "prism", "prism_export", "auto")
    presets = {
        "quick": [
            *(Scenario(f"devices_1k_{r}", "assets", 1000, r) for r in routes),
            Scenario("devices_1k_single_record_load", "assets", 1000, "auto", batch_size=1),
        ],
        "large": [Scenario("devices_100k_auto", "assets", 100_000, "auto")],
        "workflows": [Scenario("workflows_100_10k_assets", "workflows", 0)],
    }
    presets["default"] = [
        *presets["quick"],
        *(Scenario(f"devices_10k_{r}", "assets", 10_000, r) for r in routes),
        Scenario("users_10k", "users", 20, users=10_000),
        Scenario("devices_10k_missing_1pct", "assets", 10_000, missing=100),
        Scenario("devices_10k_delta_1pct", "assets", 10_000, delta_changed=100),
        *presets["workflows"],
    ]
    chosen: list[Scenario] = []
    every = {s.name: s for group in presets.values() for s in group}
    for item in selection.split(","):
        item = item.strip()
        chosen += presets.get(item, [every[item]] if item in every else [])
    return chosen


def write_integration(folder: Path, scenario: Scenario) -> str:
    source = (
        ROOT
        / "include"
        / "integrations"
        / ("kandji_users.yaml" if scenario.kind == "users" else "kandji_devices_and_software.yaml")
    )
    data = yaml.safe_load(source.read_text())
    data["schedule"] = {"cron": None, "timezone": "UTC"}
    data["load"] = {**data.get("load", {}), "batch_size": scenario.batch_size, "max_failed_records": 10**9}
    if scenario.kind == "users":
        data["preference"] = "create_and_update"
    else:
        # The per-device baseline is sequential, as Kandji's own example scripts are; our routes send the
        # per-device calls they still need (Windows, Android) with the default concurrency.
        data["software"] = {"enabled": True, "route": scenario.route, "export_threshold_rows": 50_000}
        if scenario.route == "per_device":
            data["software"]["concurrency"] = 1
    if scenario.delta_changed:
        data["delta"] = {"enabled": True, "full_sync_every": "7d"}
    if scenario.missing:
        data["software"] = {"enabled": False}
        data["when_missing"] = {"after_days": 7, "set": {"status": "Not in Kandji"}}
    dag_id = "kandji_users" if scenario.kind == "users" else "kandji_devices_and_software"
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / f"{dag_id}.yaml").write_text(yaml.safe_dump(data))
    return dag_id


def run_child(scenario: Scenario, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """One scenario's DAG run in a child process (and its own process group), bounded by SCENARIO_TIMEOUT."""
    import signal

    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=SCENARIO_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        raise SystemExit(
            f"{scenario.name}: its run did not end within {SCENARIO_TIMEOUT:g}s (SCENARIO_TIMEOUT) and was "
            f"stopped; its last output:\n{stdout[-4000:]}\n{stderr[-4000:]}"
        ) from None
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def lower_bound(scenario: Scenario, fleet: dict, records: int, per_device_platforms: int) -> dict[str, int]:
    """⌈devices/300⌉ device pages + the fewest software calls the route allows + ⌈records/batch⌉
    Oomnitza batches + the run's fixed calls."""
    if scenario.kind == "users":
        return {"kandji": math.ceil(scenario.users / 300), "oomnitza": math.ceil(records / 100) + 3}
    if scenario.missing:
        # No software; when_missing adds one filtered read of the candidates and its own small run.
        flag = math.ceil(scenario.missing / 500) + math.ceil(scenario.missing / scenario.batch_size) + 2
        return {
            "kandji": math.ceil(fleet["devices"] / 300),
            "oomnitza": math.ceil(records / scenario.batch_size) + 3 + flag,
        }
    pages = math.ceil(fleet["devices"] / 300)
    software = {
        "per_device": fleet["devices"],
        "prism": math.ceil(fleet["prism_app_rows"] / 300) + per_device_platforms,
        "prism_export": 3 + per_device_platforms,  # start, one poll, the download
        "auto": 1 + 3 + per_device_platforms,  # + the /prism/count that chooses
    }[scenario.route]
    if scenario.route == "auto" and fleet["prism_app_rows"] < 50_000:
        software = 1 + math.ceil(fleet["prism_app_rows"] / 300) + per_device_platforms
    # With delta on, only the changed devices go to Oomnitza (their batches + the run's fixed calls).
    sent = scenario.delta_changed or records
    return {"kandji": pages + software, "oomnitza": math.ceil(sent / scenario.batch_size) + 3}


def profiled(scenario: Scenario, child: list[str]) -> list[str]:
    """The child's command line, under the profiler PROFILE names (py-spy: where the time goes;
    memray: what holds the memory at the peak). Output lands beside the results."""
    OUT.mkdir(exist_ok=True)
    if PROFILE == "py-spy":
        flame = OUT / f"{scenario.name}.py-spy.svg"
        return [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--idle",
            "--subprocesses",
            "--rate",
            "50",
            "-o",
            str(flame),
            "--",
            sys.executable,
            *child,
        ]
    if PROFILE == "memray":
        return [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--follow-fork",
            "--force",
            "-o",
            str(OUT / f"{scenario.name}.memray.bin"),
            *child,
        ]
    return [sys.executable, *child]


def run_workflows(scenario: Scenario) -> dict:
    """The workflows scenario runs on a sandbox of its own (scripts/bench_workflows.py)."""
    print(f"-- {scenario.name}: the sandbox, 100 workflow files, 10,000 Oomnitza assets ...", flush=True)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_workflows.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    (OUT / f"{scenario.name}.log").write_text(out.stdout + out.stderr)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"{scenario.name} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    row = json.loads(line.removeprefix("BENCH "))
    print("   " + json.dumps(row), flush=True)
    return row


def run(scenario: Scenario, kandji: EmulatorProcess, oomnitza: EmulatorProcess, workdir: Path) -> dict:
    if scenario.kind == "workflows":
        return run_workflows(scenario)
    kandji.admin.post("reset", {"devices": scenario.devices, "users": scenario.users or None, "seed": 11, "tokens": [KANDJI_TOKEN],
                                "rate_limit": {"per_second": None, "per_hour": None}, "settings": {"export_ready_after_polls": 2}})  # fmt: skip
    oomnitza.admin.post("reset", {"tokens": [OOMNITZA_TOKEN]})
    if scenario.missing:  # assets an earlier sync loaded, whose devices left Kandji 30 days ago
        gone = [{"serial_number": f"GONE{i:06d}", "kandji_device_id": f"00000000-0000-4000-8000-{i:012d}",
                 "kandji_connector_sync_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))}
                for i in range(scenario.missing)]  # fmt: skip
        oomnitza.admin.post("records/assets", gone)
    for emulator in (kandji, oomnitza):
        emulator.admin.put("faults", {"latency_ms": LATENCY_MS})
        # The bench counts calls; keeping a fleet's request bodies would only load the emulators.
        emulator.admin.put("recording", {"bodies": False})
    fleet = kandji.admin.get("summary")
    folder = workdir / "integrations"
    folder.mkdir(exist_ok=True)
    dag_id = write_integration(folder, scenario)
    home = Path(tempfile.mkdtemp(dir=workdir))
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        KANDJI_OOMNITZA_INTEGRATIONS_DIR=str(folder),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        AIRFLOW_CONN_KANDJI_DEFAULT=json.dumps(
            {
                "conn_type": "http",
                "host": kandji.url,
                "password": KANDJI_TOKEN,
                "extra": {"requests_per_hour": 10**9, "requests_per_second": 1000},
            }
        ),
        AIRFLOW_CONN_OOMNITZA_DEFAULT=json.dumps(
            {"conn_type": "http", "host": oomnitza.url, "password": OOMNITZA_TOKEN}
        ),
    )
    print(
        f"-- {scenario.name}: {fleet['devices']} devices, {fleet['prism_app_rows']} Prism app rows ...",
        flush=True,
    )
    child = [str(ROOT / "scripts" / "bench_child.py"), dag_id, str(ROOT / "dags")]
    full_run = None
    if scenario.delta_changed:  # the full run that fills the store, then the changes, then the measured run
        first = run_child(scenario, [sys.executable, *child], env)
        line = next((x for x in first.stdout.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise SystemExit(
                f"{scenario.name} (full run) failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}"
            )
        full_run = json.loads(line.removeprefix("BENCH "))
        full_run["oomnitza_calls"] = len(
            [r for r in oomnitza.admin.get("requests") if r["path"].startswith("/api/")]
        )
        devices = kandji.admin.get("devices")
        for device in devices[:: max(len(devices) // scenario.delta_changed, 1)][: scenario.delta_changed]:
            kandji.admin.patch(
                f"devices/{device['device_id']}", {"device_name": device["device_name"] + " (renamed)"}
            )
        for emulator in (kandji, oomnitza):
            emulator.admin.clear_requests()
    started = time.perf_counter()
    out = run_child(scenario, profiled(scenario, child), env)
    (OUT / f"{scenario.name}.log").write_text(out.stdout + out.stderr)  # the run's Airflow logs
    for task_log in sorted(home.rglob("*.log")):
        with (OUT / f"{scenario.name}.log").open("a") as combined:
            combined.write(f"\n==> {task_log.relative_to(home)}\n{task_log.read_text(errors='replace')}")
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"{scenario.name} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    result = json.loads(line.removeprefix("BENCH "))
    kandji_calls = [r for r in kandji.admin.get("requests") if r["path"].startswith(("/api/", "/_s3/"))]
    oomnitza_calls = [r for r in oomnitza.admin.get("requests") if r["path"].startswith("/api/")]
    summary = result["summary"] or {}
    records = summary.get("kandji_records", 0)
    others = sum(n for p, n in fleet["platforms"].items() if p in ("Windows", "Android"))
    bound = lower_bound(scenario, fleet, records, others)
    row = {
        "scenario": scenario.name,
        "route": summary.get("software_route") or scenario.route,
        "devices": fleet["devices"] if scenario.kind == "assets" else 0,
        "users": scenario.users,
        "records": records,
        "software_rows": summary.get("software_rows", 0),
        "state": result["state"],
        "kandji_calls": len(kandji_calls),
        "oomnitza_calls": len(oomnitza_calls),
        "lower_bound_kandji": bound["kandji"],
        "lower_bound_oomnitza": bound["oomnitza"],
        "wall_seconds": round(result["wall_seconds"], 1),
        "process_seconds": round(time.perf_counter() - started, 1),
        "peak_mb": round(result["peak_mb"]),
        "task_peak_mb": result.get("task_peak_mb", {}),
        "task_seconds": result.get("task_seconds", {}),
        "mode": result.get("mode"),
        "records_per_second": round(records / result["wall_seconds"], 1) if result["wall_seconds"] else None,
        "added": summary.get("added"),
        "failed": summary.get("failed"),
    }
    if full_run is not None:
        full = full_run["summary"] or {}
        row["full_run_oomnitza_calls"] = full_run["oomnitza_calls"]
        row["full_run_app_rows_sent"] = full.get("app_rows_sent")
        row["full_run_wall_seconds"] = round(full_run["wall_seconds"], 1)
        row["app_rows_sent"] = summary.get("app_rows_sent")
        row["records_sent"] = summary.get("records_sent")
        row["skipped_unchanged"] = summary.get("skipped_unchanged")
    if scenario.missing:
        row["flagged_as_missing"] = summary.get("flagged_as_missing")
        row["when_missing"] = summary.get("when_missing")
        row["when_missing_calls"] = (summary.get("calls") or {}).get("oomnitza_when_missing")
    print("   " + json.dumps(row), flush=True)
    return row


def ratios(rows: list[dict]) -> list[str]:
    by = {r["scenario"]: r for r in rows}
    lines = []
    for size in ("1k", "10k"):
        per, auto = by.get(f"devices_{size}_per_device"), by.get(f"devices_{size}_auto")
        if per and auto:
            lines.append(
                f"{size} devices: per-device ÷ auto = {per['kandji_calls'] / auto['kandji_calls']:.1f}× Kandji calls, {per['wall_seconds'] / auto['wall_seconds']:.1f}× wall time"
            )
    for row in rows:
        if "p95_latency_seconds" in row:
            lines.append(
                f"{row['scenario']}: p95 change-to-run latency {row['p95_latency_seconds']} s (goal ≤ poll interval "
                f"{row['poll_interval_seconds']:g} s + 10 s), {row['oomnitza_reads_per_poll']} Oomnitza reads per poll "
                f"for {row['workflows']} workflows"
            )
            continue
        lines.append(
            f"{row['scenario']}: Kandji calls ÷ lower bound = {row['kandji_calls'] / row['lower_bound_kandji']:.2f}; Oomnitza calls ÷ lower bound = {row['oomnitza_calls'] / row['lower_bound_oomnitza']:.2f}"
        )
    for row in rows:
        if "full_run_app_rows_sent" in row:
            lines.append(
                f"{row['scenario']}: delta run sent {row['records_sent']} records and {row['app_rows_sent']} app rows "
                f"with {row['oomnitza_calls']} Oomnitza calls (lower bound {row['lower_bound_oomnitza']}); the full run "
                f"before it: {row['full_run_app_rows_sent']} app rows, {row['full_run_oomnitza_calls']} Oomnitza calls, "
                f"{row['full_run_wall_seconds']} s (app rows ÷ {row['full_run_app_rows_sent'] / max(row['app_rows_sent'] or 1, 1):.0f})"
            )
        if "flagged_as_missing" in row:
            lines.append(
                f"{row['scenario']}: flagged {row['flagged_as_missing']} records gone from Kandji with "
                f"{row['when_missing_calls']} Oomnitza calls (lower bound 4: one filtered read of 500, one batch, "
                "finalize, the run log)"
            )
    single, batched = by.get("devices_1k_single_record_load"), by.get("devices_1k_auto")
    if single and batched:
        lines.append(
            f"one-record-per-request ÷ batched load (1k devices): {single['oomnitza_calls'] / batched['oomnitza_calls']:.1f}× Oomnitza calls, {single['wall_seconds'] / batched['wall_seconds']:.1f}× wall time"
        )
    return lines


def markdown(rows: list[dict], ratio_lines: list[str], parse: list[dict]) -> str:
    columns = [
        "scenario",
        "route",
        "records",
        "software_rows",
        "kandji_calls",
        "lower_bound_kandji",
        "oomnitza_calls",
        "wall_seconds",
        "peak_mb",
        "records_per_second",
        "state",
    ]
    syncs = [r for r in rows if "p95_latency_seconds" not in r]
    watches = [r for r in rows if "p95_latency_seconds" in r]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in syncs]
    if watches:
        watched = ["scenario", "workflows", "assets", "changes", "poll_interval_seconds", "p50_latency_seconds",
                   "p95_latency_seconds", "max_latency_seconds", "oomnitza_reads_per_poll", "state"]  # fmt: skip
        lines += ["", "| " + " | ".join(watched) + " |", "|" + "---|" * len(watched)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in watched) + " |" for r in watches]
    lines += [
        "",
        *(f"- {line}" for line in ratio_lines),
        "",
        "| DAG file | parse ms (as the DAG processor: gc frozen) | parse ms (fresh process) | within 100 ms |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {p['file']} | {p['duration_ms']:.1f} | {p['fresh_process_ms']:.1f} | "
        f"{'**no: over budget**' if p.get('over_budget') else 'yes'} |"
        for p in parse
    ]
    machine = (
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, latency {LATENCY_MS:g} ms per request, "
        f"BENCH_MODE={os.environ.get('BENCH_MODE', 'executor')} (peak_mb: "
        + (
            "the largest task process)"
            if os.environ.get("BENCH_MODE", "executor") == "executor"
            else "the one process)"
        )
    )
    return f"Measured {time.strftime('%Y-%m-%d')} on {machine}.\n\n" + "\n".join(lines) + "\n"


def chart(rows: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    assets = [r for r in rows if r.get("devices")]
    if not assets:
        return
    labels = [r["scenario"].removeprefix("devices_") for r in assets]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    # Side by side, not stacked: on a log axis a stack hides the smaller of the two (the auto route's
    # few hundred Kandji calls under thousands of Oomnitza ones, or the other way round).
    positions = range(len(assets))
    width = 0.4
    for offset, key, name in (
        (-width / 2, "kandji_calls", "Kandji calls"),
        (width / 2, "oomnitza_calls", "Oomnitza calls"),
    ):
        values = [max(r[key], 1) for r in assets]
        bars = left.bar([p + offset for p in positions], values, width, label=name)
        left.bar_label(bars, labels=[f"{r[key]:,}" for r in assets], fontsize=6, rotation=90, padding=2)
    left.set_xticks(list(positions), labels)
    left.set_yscale("log")
    left.set_ylim(top=max(max(r["kandji_calls"], r["oomnitza_calls"]) for r in assets) * 10)
    left.set_title("API calls by route and fleet size (log scale)")
    left.legend()
    right.bar(labels, [r["wall_seconds"] for r in assets], color="tab:green")
    right.set_title(f"Wall time (s), {LATENCY_MS:g} ms per request")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(OUT / "chart.png", dpi=110)


def main() -> None:
    selection = os.environ.get("SCENARIOS", "default")
    chosen = scenarios(selection)
    if not chosen:
        raise SystemExit(f"no scenario matches {selection!r}")
    OUT.mkdir(exist_ok=True)
    parse = json.loads(
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "parse_times.py"), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    biggest = max(s.devices for s in chosen)
    kandji = EmulatorProcess(
        "dev.emulators.kandji",
        "--devices",
        "10",
        "--token",
        KANDJI_TOKEN,
        "--per-second",
        "0",
        "--per-hour",
        "0",
    )
    oomnitza = EmulatorProcess("dev.emulators.oomnitza", "--token", OOMNITZA_TOKEN)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            for scenario in chosen:
                rows.append(run(scenario, kandji, oomnitza, Path(workdir)))
    finally:
        kandji.stop()
        oomnitza.stop()
    ratio_lines = ratios(rows)
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "latency_ms": LATENCY_MS,
                "largest_fleet": biggest,
                "rows": rows,
                "ratios": ratio_lines,
                "parse": parse,
            },
            indent=2,
        )
    )
    table = markdown(rows, ratio_lines, parse)
    (OUT / "results.md").write_text(table)
    chart(rows)
    print("\n" + table)
    print(f"Written: {OUT / 'results.json'}, {OUT / 'results.md'}, {OUT / 'chart.png'}")


if __name__ == "__main__":
    main()
