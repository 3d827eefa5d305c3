"""Rules every DAG this project ships must follow, checked on the real DAG folder."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from helpers.harness import ROOT

DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def test_dag_folder_has_dags(dag_bag):
    assert DAG_FILES, "dags/ holds no DAG file"
    assert dag_bag.dags, f"no DAG was loaded; import errors: {dag_bag.import_errors}"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_file_imports_cleanly_and_parse_time(dag_file, capsys):
    """No import error, no warning (e.g. an Airflow 2 import path), and the parse time printed."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "parse_times.py"), "--json", "--frozen-only", str(dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    (result,) = json.loads(out.stdout)
    assert result["import_errors"] == {}, result["import_errors"]
    assert result["warnings"] == {}, result["warnings"]
    if dag_file.name.endswith("_file_errors.py"):
        assert not result["dags"]  # it only reports invalid integration/workflow files, as an import error
    else:
        assert result["dags"], f"{dag_file.name} defines no DAG"
    # A benchmark figure, not a timed assertion: parse time varies with machine load.
    with capsys.disabled():
        print(f"\n[parse time] {dag_file.name}: {result['duration_ms']:.1f} ms (budget 100 ms)")


def _dags(dag_bag):
    return sorted(dag_bag.dags.values(), key=lambda d: d.dag_id)


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_every_dag_follows_the_house_rules(dag_bag):
    problems = []
    for dag in _dags(dag_bag):
        args = dag.default_args or {}
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag.dag_id}: no doc_md")
        if dag.max_active_runs is None:
            problems.append(f"{dag.dag_id}: no max_active_runs")
        if args.get("owner") in (None, "", "airflow"):
            problems.append(f"{dag.dag_id}: default_args has no owner of its own")
        preset = "preset" in dag.tags  # its only task sends a device action: never retried by Airflow
        if not preset and (not isinstance(args.get("retries"), int) or args["retries"] < 2):
            problems.append(f"{dag.dag_id}: default_args retries must be >= 2")
        backoff = args.get("retry_exponential_backoff")
        if not preset and type(backoff) is not float:
            problems.append(f"{dag.dag_id}: retry_exponential_backoff must be a float, got {backoff!r}")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag.dag_id}.{task.task_id}: no owner")
            if task.retries and not isinstance(task.retry_delay, timedelta):
                problems.append(f"{dag.dag_id}.{task.task_id}: retry_delay is not a timedelta")
            if not isinstance(task.execution_timeout, timedelta):
                problems.append(f"{dag.dag_id}.{task.task_id}: no execution_timeout")
            if preset and task.retries:
                problems.append(f"{dag.dag_id}.{task.task_id}: a device action must not be retried")
    assert not problems, "\n".join(problems)


def test_plugin_loads_and_the_library_is_not_loaded_as_plugins():
    """plugins/.airflowignore keeps the loader out of the library package (it would import
    hooks/kandji.py as a top-level module named "kandji")."""
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    plugins = json.loads(out.stdout[out.stdout.index("[") :])
    names = {p["name"] for p in plugins}
    assert names == {"kandji_oomnitza"}, names
    (plugin,) = plugins
    assert "OomnitzaRecordsLink" in str(plugin) and "KandjiDeviceLink" in str(plugin)
