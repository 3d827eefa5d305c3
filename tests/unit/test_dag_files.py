"""What parsing a DAG file costs the DAG processor, every parse loop: only the settings files it needs, each
read once, and none of the heavy modules the tasks import when they run (pandas, HTTP clients, the
hooks, the steps, notifier back-ends). Checked by what a parse imports, not by a time: a time is flaky on
a loaded machine; a module list is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p.name for p in (ROOT / "dags").glob("*.py"))
# Imported only when a task runs: none of these may load while a DAG file is parsed.
NOT_AT_PARSE_TIME = (
    "pandas",
    "numpy",
    "pyarrow",
    "requests",
    "aiohttp",
    "apprise",
    "tenacity",
    "airflow.providers.http",
    "airflow.providers.apprise",
    "kandji_oomnitza.hooks.base",
    "kandji_oomnitza.hooks.kandji",
    "kandji_oomnitza.hooks.oomnitza",
    "kandji_oomnitza.hooks.pagination",
    "kandji_oomnitza.integrations.steps",
    "kandji_oomnitza.integrations.mapping",
    "kandji_oomnitza.integrations.software",
    "kandji_oomnitza.integrations.report",
    "kandji_oomnitza.integrations.delta",
    "kandji_oomnitza.integrations.missing",
    "kandji_oomnitza.integrations.handover",
    "kandji_oomnitza.workflows.tasks",
    "kandji_oomnitza.ui",
)

PARSE = """
import json, sys
from collections import Counter
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk
from kandji_oomnitza import settings_files
reads = Counter()
original = settings_files.read_bounded
def counted(path, *args, **kwargs):
    reads[str(path)] += 1
    return original(path, *args, **kwargs)
settings_files.read_bounded = counted
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({"imported": sorted(set(sys.modules) - before), "reads": reads,
                  "errors": bag.import_errors, "dags": sorted(bag.dag_ids)}))
"""


def parsed(dag_file: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags" / dag_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_parsing_a_dag_file_imports_nothing_heavy_and_reads_each_settings_file_once(dag_file):
    result = parsed(dag_file)
    heavy = [
        module
        for module in result["imported"]
        if any(module == name or module.startswith(name + ".") for name in NOT_AT_PARSE_TIME)
    ]
    assert heavy == [], f"parsing {dag_file} imports {heavy}: import them inside the tasks"
    assert all(count == 1 for count in result["reads"].values()), result["reads"]
    if not dag_file.endswith("_file_errors.py"):
        assert result["dags"] and not result["errors"], result
