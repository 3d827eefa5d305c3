"""Fault injection over the real devices DAG and both emulators: every Kandji record is accounted for.

For each fault the run either succeeds or fails with a clear message, and once it has finished (with
Airflow's own retries), every device in Kandji is either an asset in Oomnitza or a row of the run's
error log with its reason. Counted, not sampled. Each test adds a row to artifacts/reliability.json,
which `make reliability` prints as a table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest
from helpers.harness import ARTIFACTS, KANDJI_TOKEN, OOMNITZA_TOKEN, oomnitza_assets
from helpers.waiting import deadline_seconds

pytestmark = pytest.mark.e2e
# One row per fault, a file each (the tests run on any worker); scripts/reliability_report.py reads them all.
# tests/conftest.py empties the folder when a test session starts.
REPORTS = ARTIFACTS / "reliability"


def write_row(row: dict) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9]+", "_", row["fault"]).strip("_")[:120]
    (REPORTS / f"{name}.json").write_text(json.dumps(row, indent=1))


def account(kandji_emulator, oomnitza_emulator, summary: dict | None, before: set[str] | None = None) -> dict:
    """Loaded + reported vs the devices Kandji held throughout the run (there at its start and still
    there at its end). A device added while the run was listing may land behind the listing's cursor;
    the next run loads it (tested below). A device counts as loaded when Oomnitza has an asset with its
    serial number, and as reported when the error log names its serial number or its Kandji id (a
    device without a usable id is reported by its serial number). A run that could not read Kandji at
    all has read no device, so it can have lost none: its state says it failed."""
    devices = {_key(d): d for d in kandji_emulator.get("devices")}
    if before is not None:
        devices = {k: v for k, v in devices.items() if k in before}
    if summary is not None and summary.get("kandji_records") is None:
        devices = {}
    assets = oomnitza_emulator.get("state")["records"]["assets"].values()
    by_serial = {d["serial_number"]: k for k, d in devices.items() if d["serial_number"]}
    by_id = {d["device_id"]: k for k, d in devices.items() if d["device_id"]}
    loaded = {by_serial[a["serial_number"]] for a in assets if a.get("serial_number") in by_serial}
    reported: set[str] = set()
    if summary and summary.get("error_log"):
        rows = list(
            csv.DictReader(io.StringIO(Path(summary["error_log"].removeprefix("file://")).read_text()))
        )
        for row in rows:
            serial = re.search(r"serial_number='([^']*)'", row["sync_key"])
            key = by_id.get(row["kandji_id"]) or (by_serial.get(serial[1]) if serial else None)
            if key is not None:
                reported.add(key)
    lost = set(devices) - loaded - reported
    serials = [a["serial_number"] for a in assets]
    return {
        "devices": len(devices),
        "loaded": len(loaded),
        "reported": len(reported - loaded),
        "lost": len(lost),
        "duplicates": len(serials) - len(set(serials)),
    }


def _key(device: dict) -> str:
    return device["device_id"] or f"serial:{device['serial_number']}"


def record(fault: str, result, accounting: dict, kandji_emulator, oomnitza_emulator, seconds: float) -> None:
    kandji_calls = [r for r in kandji_emulator.get("requests") if r["path"].startswith("/api/")]
    oomnitza_calls = [r for r in oomnitza_emulator.get("requests") if r["path"].startswith("/api/")]
    row = {
        "fault": fault,
        "state": result.state,
        "kandji_calls": len(kandji_calls),
        "kandji_faulted": sum(
            1 for r in kandji_calls if r["status"] in (None, 429, 599) or (r["status"] or 0) >= 500
        ),
        "oomnitza_calls": len(oomnitza_calls),
        "oomnitza_faulted": sum(
            1 for r in oomnitza_calls if r["status"] in (None, 429, 599) or (r["status"] or 0) >= 500
        ),
        "seconds": round(seconds, 1),
        **accounting,
    }
    write_row(row)


def run_with_fault(
    run_dag, kandji_emulator, oomnitza_emulator, fault: str, dag="kandji_devices_and_software", conf=None
):
    before = {_key(d) for d in kandji_emulator.get("devices")}
    started = time.monotonic()
    result = run_dag(dag, conf=conf)
    summary = result.xcoms.get(("report", "return_value")) or result.xcoms.get(("report", "summary"))
    accounting = account(kandji_emulator, oomnitza_emulator, summary, before)
    record(fault, result, accounting, kandji_emulator, oomnitza_emulator, time.monotonic() - started)
    assert accounting["lost"] == 0, accounting
    assert accounting["duplicates"] == 0, accounting
    return result, summary, accounting


@pytest.fixture
def fast_kandji(airflow_connections, kandji_process, oomnitza_process):
    """Short timeouts and backoff, so faults cost seconds, not minutes."""
    airflow_connections(
        "kandji_default",
        host=kandji_process.url,
        password=KANDJI_TOKEN,
        extra={"timeout": 1.5, "backoff_seconds": 0.01, "max_attempts": 8},
    )
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        password=OOMNITZA_TOKEN,
        extra={"timeout": 1.5, "backoff_seconds": 0.01, "max_attempts": 8},
    )


KANDJI_FAULTS = {
    "kandji 429 storm (Retry-After)": {
        "scripted": [{"kind": "status", "status": 429, "retry_after": 0.05, "path": "^/api/", "times": 25}]
    },
    "kandji 20% 5xx": {"error_rate": 0.2, "seed": 3},
    "kandji connection resets (10%)": {"reset_rate": 0.1, "seed": 4},
    "kandji timeouts": {
        "scripted": [{"kind": "timeout", "seconds": 3, "path": "^/api/v1/(devices|prism)", "times": 4}]
    },
    "kandji malformed JSON page": {
        "scripted": [{"kind": "malformed_json", "path": "^/api/v1/devices$", "times": 2, "after": 1}]
    },
}


@pytest.mark.parametrize("fault", list(KANDJI_FAULTS))
def test_kandji_faults(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji, fault):
    kandji_emulator.put("faults", KANDJI_FAULTS[fault])
    result, summary, accounting = run_with_fault(run_dag, kandji_emulator, oomnitza_emulator, fault)
    assert result.state == "success", result.task_states
    assert accounting["loaded"] == accounting["devices"]
    assert sum(summary["retries"].values()) > 0


def test_devices_removed_and_added_mid_pagination(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji):
    kandji_emulator.post("reset", {"devices": 700, "seed": 5, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    kandji_emulator.put("settings", {"mutate_devices_at_offset": {"offset": 300, "remove": 1, "add": 1}})
    result, _, _ = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "device removed + one added mid-pagination"
    )
    assert result.state == "success"
    # The next run loads whatever was added behind the first run's cursor, and duplicates nothing.
    again, summary, _ = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "rerun after the fleet changed"
    )
    assert again.state == "success" and summary["failed"] == 0
    final = account(kandji_emulator, oomnitza_emulator, summary)
    assert final["loaded"] == final["devices"] == 700 and final["duplicates"] == 0


def test_prism_export_failure_falls_back(
    run_dag, integration_dag_factory, kandji_emulator, oomnitza_emulator, fast_kandji
):
    kandji_emulator.put("settings", {"export_mode": "failed", "export_ready_after_polls": 1})
    started = time.monotonic()
    result = run_dag(integration_dag_factory(software={"route": "prism_export"}))
    accounting = account(kandji_emulator, oomnitza_emulator, result.xcom("report"))
    record(
        "prism export fails (falls back to pages)",
        result,
        accounting,
        kandji_emulator,
        oomnitza_emulator,
        time.monotonic() - started,
    )
    assert result.state == "success" and accounting["lost"] == 0
    assert "Prism pages used instead" in result.xcom("extract", key="stats")["software"]["fallbacks"][0]


OOMNITZA_FAULTS = {
    "oomnitza 5xx during load": {
        "scripted": [{"kind": "status", "status": 503, "path": "^/api/v3/bulk$", "times": 3}]
    },
    "oomnitza timeouts during load": {
        "scripted": [{"kind": "timeout", "seconds": 3, "path": "^/api/v3/bulk$", "times": 2}]
    },
    "oomnitza answer lost after applying a batch": {
        "scripted": [{"kind": "lost_response", "path": "^/api/v3/bulk$", "times": 1}]
    },
}


@pytest.mark.parametrize("fault", list(OOMNITZA_FAULTS))
def test_oomnitza_faults(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji, fault):
    oomnitza_emulator.put("faults", OOMNITZA_FAULTS[fault])
    result, _, accounting = run_with_fault(run_dag, kandji_emulator, oomnitza_emulator, fault)
    assert result.state == "success", result.task_states
    assert accounting["loaded"] == accounting["devices"]


def test_oomnitza_rejecting_some_records(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji):
    model = oomnitza_emulator.get("state")["data_model"]
    for field in model["assets"]:
        if field["field"] == "kandji_platform":  # a dropdown that knows only Macs and iPhones
            field.update(type="dropdown", searchhelp=["Mac", "iPhone"])
    oomnitza_emulator.put("data_model", model)
    result, summary, accounting = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "oomnitza rejects some records"
    )
    assert result.state == "failed" and summary["failed"] > 0  # reported, and the run says so
    assert accounting["reported"] == summary["failed"]
    assert "Everything else was loaded" in result.log or "everything else was loaded" in result.log


def test_load_task_failing_mid_load_is_retried_by_airflow(
    run_dag, kandji_emulator, oomnitza_emulator, fast_kandji, airflow_connections, oomnitza_process
):
    # Every bulk request after the first loses its answer, until the hook gives up: the load task fails
    # with half its batches applied, and Airflow's retry sends everything again under a new portion.
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        password=OOMNITZA_TOKEN,
        extra={"timeout": 1.5, "backoff_seconds": 0.01, "max_attempts": 2},
    )
    oomnitza_emulator.put(
        "faults", {"scripted": [{"kind": "lost_response", "path": "^/api/v3/bulk$", "times": 2, "after": 1}]}
    )
    result, _, accounting = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "load task fails mid-load, Airflow retries"
    )
    assert result.state == "success"
    runs = oomnitza_emulator.get("state")["runs"]
    assert len(runs) == 2, "the retry used its own Oomnitza run"
    assert accounting["duplicates"] == 0


@pytest.fixture
def integration_dag_factory(integration_dag_from):
    return lambda **changes: integration_dag_from("kandji_devices_and_software", **changes)


def test_two_integrations_at_once_share_one_tenant(
    kandji_process, oomnitza_process, kandji_emulator, oomnitza_emulator, tmp_path
):
    """Both integrations in parallel processes against one Kandji tenant limited to 10 requests/s:
    each hook's limiter and Retry-After handling keep both runs going, and both succeed. Each process runs
    its DAG with ``dag.test()`` in-process (BENCH_MODE=in-process): what is shared is the tenant, and an API
    server and a task process per task in each child only made the test slow enough to time out on a
    loaded machine (CI: over 600 s)."""
    import os
    import signal
    import subprocess
    import sys

    from helpers.harness import ROOT

    kandji_emulator.put("rate_limit", {"per_second": 10, "per_hour": None, "retry_after": 1})
    oomnitza_emulator.post(
        "records/users", [{"email": u["email"]} for u in kandji_emulator.get("users")[:10]]
    )
    env_base = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "AIRFLOW_CONN_KANDJI_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": kandji_process.url,
                "password": KANDJI_TOKEN,
                "extra": {"requests_per_second": 5, "backoff_seconds": 0.05},
            }
        ),
        "AIRFLOW_CONN_OOMNITZA_DEFAULT": json.dumps(
            {"conn_type": "http", "host": oomnitza_process.url, "password": OOMNITZA_TOKEN}
        ),
    }
    started = time.monotonic()
    allowed = deadline_seconds(150)  # both runs, each with its own metadata DB to create, on an idle machine
    children = []
    for dag_id in ("kandji_devices_and_software", "kandji_users"):
        home = tmp_path / dag_id
        home.mkdir()
        env = {
            **env_base,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db(home),
            "BENCH_MODE": "in-process",
        }
        children.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "bench_child.py"), dag_id, str(ROOT / "dags")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        )
    try:
        outputs = []
        for dag_id, child in zip(("kandji_devices_and_software", "kandji_users"), children, strict=True):
            try:
                outputs.append(child.communicate(timeout=max(1.0, allowed - (time.monotonic() - started)))[0])
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                pytest.fail(
                    f"timed out after {allowed:.0f}s waiting for {dag_id}'s run in its own process to finish; "
                    f"its output ends:\n{child.communicate()[0][-3000:]}"
                )
    finally:
        for child in children:  # a hung run must not outlive the test, nor its API server
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    results = [
        json.loads(
            next(line for line in out.splitlines() if line.startswith("BENCH ")).removeprefix("BENCH ")
        )
        for out in outputs
    ]
    assert [r["state"] for r in results] == ["success", "success"], [o[-2000:] for o in outputs]
    calls = [r for r in kandji_emulator.get("requests") if r["path"].startswith("/api/")]
    per_second: dict[int, int] = {}
    for call in calls:
        if call["status"] == 200:
            per_second[int(call["time"])] = per_second.get(int(call["time"]), 0) + 1
    assert max(per_second.values()) <= 10, "the tenant's per-second limit held"
    accounting = account(kandji_emulator, oomnitza_emulator, results[0]["summary"])
    assert accounting["lost"] == 0
    write_row({"fault": "two integrations at once, one tenant at 10 req/s", "state": "success", "kandji_calls": len(calls),
               "kandji_faulted": sum(1 for c in calls if c["status"] == 429), "oomnitza_calls": None, "oomnitza_faulted": None,
               "seconds": round(time.monotonic() - started, 1), **accounting})  # fmt: skip


def metadata_db(home) -> str:
    """A PostgreSQL database of its own where `make test` provides PostgreSQL (the executor, an API
    server and the run share it: SQLite locks under them on a loaded machine), else SQLite."""
    from scripts import services

    server = os.environ.get(services.PREFIX + "POSTGRESQL")
    if not server:
        return f"sqlite:///{home / 'airflow.db'}"
    name = "kandji_oomnitza_reliability_" + home.name
    services.create_database(server, name)
    return services.database_url(server, name)


# -- permanent faults end a run at once; records are isolated; nothing vanishes ----------------------
def test_revoked_kandji_token_fails_at_once(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji):
    kandji_emulator.put("tokens", {"tokens": ["a-new-token-after-rotation"]})
    result, summary, _ = run_with_fault(run_dag, kandji_emulator, oomnitza_emulator, "kandji token revoked")
    assert result.state == "failed" and result.task_states["extract"] == "failed"
    assert result.tries["extract"] == 1 and len(kandji_emulator.requests("^/api/v1/")) == 1  # one call
    assert "Kandji rejected the API token of connection 'kandji_default'" in result.log
    assert summary["kandji_records"] is None and oomnitza_emulator.requests("^/api/v3/bulk") == []


def test_one_malformed_device_does_not_block_the_fleet(
    run_dag, kandji_emulator, oomnitza_emulator, fast_kandji
):
    kandji_emulator.post(
        "devices", {"device_id": "bad.id_1", "platform": "Windows", "serial_number": "BADID0001"}
    )
    kandji_emulator.post("devices", {"device_id": None, "platform": "Mac", "serial_number": "NOID00001"})
    result, summary, accounting = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "one malformed and one id-less device"
    )
    assert result.tries["extract"] == 1 and result.task_states["load"] == "success"
    assert result.state == "failed" and summary["rejected_before_load"] == 2  # reported, and the run says so
    assert accounting["loaded"] == accounting["devices"] - 2 and accounting["reported"] == 2
    rows = error_log_rows(summary)
    assert any("the Kandji id 'bad.id_1' is not valid" in r["reason"] for r in rows)
    assert any("the Kandji record has no id" in r["reason"] for r in rows)
    assert not kandji_emulator.requests("bad.id_1")  # never put into a URL


def test_oomnitza_breaking_after_the_first_batch_accounts_for_every_record(
    run_dag,
    integration_dag_factory,
    kandji_emulator,
    oomnitza_emulator,
    fast_kandji,
    airflow_connections,
    oomnitza_process,
):
    airflow_connections(
        "oomnitza_default",
        host=oomnitza_process.url,
        password=OOMNITZA_TOKEN,
        extra={"timeout": 1.5, "backoff_seconds": 0.01, "max_attempts": 2},
    )
    kandji_emulator.post("reset", {"devices": 320, "seed": 9, "tokens": [KANDJI_TOKEN], "rate_limit": {}})
    kandji_emulator.post("devices", {"serial_number": "", "platform": "Mac"})  # two rejects before loading
    kandji_emulator.post("devices", {"serial_number": "", "platform": "iPad"})
    oomnitza_emulator.put(
        "faults",
        {
            "scripted": [
                {"kind": "status", "status": 500, "path": "^/api/v3/bulk$", "times": 1000, "after": 1}
            ]
        },
    )
    result, summary, accounting = run_with_fault(
        run_dag,
        kandji_emulator,
        oomnitza_emulator,
        "oomnitza 500 on every batch after the first",
        # One batch at a time, so "the first batch" is the first batch of records.
        dag=integration_dag_factory(load={"concurrency": 1}),
    )
    assert result.state == "failed" and result.task_states["load"] == "failed"
    assert result.task_states["report"] == "failed" and summary is not None  # the report ran anyway
    assert accounting["loaded"] == 100 and accounting["lost"] == 0
    assert summary["rejected_before_load"] == 2
    # The report speaks for the load's last attempt, which Oomnitza failed from its first batch on; the
    # first attempt's first batch had landed (counted as loaded above), and every other record is listed.
    assert summary["unconfirmed"] + summary["never_sent"] == 320
    stages = {r["stage"] for r in error_log_rows(summary)}
    assert {"rejected before loading", "sent, unconfirmed", "never sent"} <= stages
    runs = oomnitza_emulator.get("state")["runs"].values()
    assert runs and all(r["finalized"] for r in runs), "every portion was finalized, so its run log closes"
    assert "The load stopped" in result.log


def test_failures_oomnitza_counts_without_a_message(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji):
    model = oomnitza_emulator.get("state")["data_model"]
    for field in model["assets"]:
        if field["field"] == "kandji_platform":
            field.update(type="dropdown", searchhelp=["Mac", "iPhone", "iPad", "AppleTV"])
    oomnitza_emulator.put("data_model", model)
    oomnitza_emulator.put("settings", {"omit_failure_messages": True})
    result, summary, accounting = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "oomnitza counts failures without messages"
    )
    others = sum(1 for d in kandji_emulator.get("devices") if d["platform"] in ("Windows", "Android"))
    assert others > 0 and summary["failed"] == others
    assert result.state == "failed" and summary["failures"] == others  # max_failed_records is 0
    assert summary["failed_without_message"] == others and accounting["lost"] == 0


def test_a_cut_export_download_falls_back_and_replaces_no_software_list(
    run_dag, integration_dag_factory, kandji_emulator, oomnitza_emulator, fast_kandji
):
    kandji_emulator.put("settings", {"export_ready_after_polls": 1})
    kandji_emulator.put(
        "faults", {"scripted": [{"kind": "truncate", "bytes": 20_000, "framing": "eof", "path": "^/_s3/"}]}
    )
    started = time.monotonic()
    result = run_dag(integration_dag_factory(software={"route": "prism_export"}))
    summary = result.xcom("report")
    accounting = account(kandji_emulator, oomnitza_emulator, summary)
    record(
        "prism export cut mid-download",
        result,
        accounting,
        kandji_emulator,
        oomnitza_emulator,
        time.monotonic() - started,
    )
    assert result.state == "success" and accounting["lost"] == 0
    assert "Prism pages used instead" in summary["warnings"][0]
    devices = {d["serial_number"]: d for d in kandji_emulator.get("devices")}
    for serial, asset in oomnitza_assets(oomnitza_emulator).items():
        assert len(asset["_software"]) == devices[serial]["_app_count"], serial


@pytest.mark.parametrize("cut", [True, False])
def test_an_export_that_cannot_be_proven_complete_replaces_no_software_list(
    run_dag, integration_dag_factory, kandji_emulator, oomnitza_emulator, fast_kandji, cut
):
    """Kandji says its Prism count is approximate, so the row count cannot vouch for the file: a download
    cut between two rows with no length (it looks complete to HTTP) must not become anyone's software list;
    the same export with its length is used."""
    kandji_emulator.put("settings", {"export_ready_after_polls": 1, "prism_count_approximate": True})
    if cut:
        kandji_emulator.put(
            "faults",
            {"scripted": [{"kind": "truncate", "bytes": 20_000, "framing": "eof", "at_row_boundary": True,
                           "path": "^/_s3/"}]},
        )  # fmt: skip
    started = time.monotonic()
    result = run_dag(integration_dag_factory(software={"route": "prism_export"}))
    summary = result.xcom("report")
    accounting = account(kandji_emulator, oomnitza_emulator, summary)
    record(
        f"prism export, approximate count, {'cut between rows, no length' if cut else 'complete'}",
        result,
        accounting,
        kandji_emulator,
        oomnitza_emulator,
        time.monotonic() - started,
    )
    assert result.state == "success" and accounting["lost"] == 0
    fallbacks = [w for w in summary["warnings"] if "Prism pages used instead" in w]
    if cut:
        assert fallbacks and "cannot be proven complete" in fallbacks[0], summary["warnings"]
    else:
        assert not fallbacks and summary["software_route"] == "prism_export", summary["warnings"]
    devices = {d["serial_number"]: d for d in kandji_emulator.get("devices")}
    for serial, asset in oomnitza_assets(oomnitza_emulator).items():
        assert len(asset["_software"]) == devices[serial]["_app_count"], serial


def test_a_body_cut_mid_stream_is_fetched_again(run_dag, kandji_emulator, oomnitza_emulator, fast_kandji):
    kandji_emulator.put(
        "faults", {"scripted": [{"kind": "truncate", "bytes": 500, "path": "^/api/v1/devices$", "times": 2}]}
    )
    result, summary, accounting = run_with_fault(
        run_dag, kandji_emulator, oomnitza_emulator, "kandji device page cut mid-body"
    )
    assert result.state == "success" and result.tries["extract"] == 1
    assert summary["retries"]["kandji"] == 2 and accounting["loaded"] == accounting["devices"]


def error_log_rows(summary: dict) -> list[dict]:
    return list(csv.DictReader(io.StringIO(Path(summary["error_log"].removeprefix("file://")).read_text())))
