"""Print how long each DAG file takes to parse, as the dag processor measures it.

Each file is parsed in a fresh Python process (as the dag processor does), so the figure includes the
cost of every import the file triggers. The figure is DagBag's own ``FileLoadStat.duration``. It is the
stricter of two ways to count: the real DAG processor forks its parsing process from a manager that has
imported Airflow and frozen its objects out of the garbage collector's sight (``gc.freeze()``), which this
fresh process has not. A file over ``BUDGET_MS`` is marked: every DAG processor pays it on every loop.

Usage: python scripts/parse_times.py [--json] [DAG_FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 100.0  # per DAG file, per parse

_CHILD = """
import json, sys, warnings
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])  # safe mode on, as the dag processor runs it
stat = bag.dagbag_stats[0] if bag.dagbag_stats else None
print(json.dumps({
    "duration_ms": stat.duration.total_seconds() * 1000 if stat else None,
    "dags": sorted(bag.dag_ids),
    "import_errors": bag.import_errors,
    "warnings": {k: list(v) for k, v in bag.captured_warnings.items()},
}))
"""


def measure(dag_file: Path, airflow_home: str) -> dict:
    env = dict(
        os.environ,
        AIRFLOW_HOME=airflow_home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(dag_file)], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["file"] = str(dag_file.relative_to(ROOT))
    result["over_budget"] = (result["duration_ms"] or 0) > BUDGET_MS
    return result


def dag_files() -> list[Path]:
    return sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parse-times-") as home:
        results = [measure(f.resolve(), home) for f in (args.files or dag_files())]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'DAG file':40} {'parse ms':>9}  DAGs")
    for r in results:
        flag = f"  OVER {BUDGET_MS:g} ms" if r["over_budget"] else ""
        print(f"{r['file']:40} {r['duration_ms']:9.1f}  {len(r['dags'])}{flag}")


if __name__ == "__main__":
    main()
