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
    "kandji_oomnitza.hooks.errors",
    "kandji_oomnitza.hooks.retry",
    "kandji_oomnitza.hooks.kandji",
    "kandji_oomnitza.hooks.kandji_export",
    "kandji_oomnitza.hooks.oomnitza",
    "kandji_oomnitza.hooks.pagination",
    "kandji_oomnitza.integrations.steps",
    "kandji_oomnitza.integrations.mapping",
    "kandji_oomnitza.integrations.software",
    "kandji_oomnitza.integrations.report",
    "kandji_oomnitza.integrations.accounting",
    "kandji_oomnitza.integrations.storage",
    "kandji_oomnitza.integrations.tasks",
    "kandji_oomnitza.integrations.delta",
    "kandji_oomnitza.integrations.missing",
    "kandji_oomnitza.integrations.handover",
    "kandji_oomnitza.workflows.steps",
    "kandji_oomnitza.workflows.tasks",
    "kandji_oomnitza.ui",
)

# One interpreter imports what the DAG processor has imported, then forks one child per DAG file, as the
# processor does: each child's new modules are what that file's parse imports.
PARSE = """
import json, os, sys
from collections import Counter
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk
from kandji_oomnitza import settings_files
results = {}
for dag_file in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        reads = Counter()
        original = settings_files.read_bounded
        def counted(path, *args, **kwargs):
            reads[str(path)] += 1
            return original(path, *args, **kwargs)
        settings_files.read_bounded = counted
        before = set(sys.modules)
        bag = DagBag(dag_folder=dag_file, safe_mode=False)
        with os.fdopen(write, "w") as out:
            json.dump({"imported": sorted(set(sys.modules) - before), "reads": reads,
                       "errors": bag.import_errors, "dags": sorted(bag.dag_ids)}, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        results[os.path.basename(dag_file)] = json.loads(answer.read() or "null")
    os.wait()
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def parses() -> dict[str, dict]:
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", PARSE, *(str(ROOT / "dags" / name) for name in DAG_FILES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_parsing_a_dag_file_imports_nothing_heavy_and_reads_each_settings_file_once(parses, dag_file):
    result = parses[dag_file]
    assert result is not None, f"parsing {dag_file} crashed its process"
    heavy = sorted(
        {
            name
            for module in result["imported"]
            for name in NOT_AT_PARSE_TIME
            if module == name or module.startswith(name + ".")
        }
    )
    assert heavy == [], f"parsing {dag_file} imports {heavy}: import them inside the tasks"
    assert all(count == 1 for count in result["reads"].values()), result["reads"]
    if not dag_file.endswith("_file_errors.py"):
        assert result["dags"] and not result["errors"], result
