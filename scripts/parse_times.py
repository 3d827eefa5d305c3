"""Print how long each DAG file takes to parse, as the dag processor measures it.

Each file is parsed in a new Python process that has imported Airflow but nothing of this package, so the
figure includes the cost of every import the file triggers. The figure is DagBag's own
``FileLoadStat.duration``, counted two ways:

- ``duration_ms`` (the budget applies to it): as the DAG processor parses. Its manager imports Airflow and
  freezes those objects out of the garbage collector's sight (``gc.freeze()``, dag_processing/manager.py)
  before it forks a parsing process, and so does this child before it parses.
- ``fresh_process_ms``: the same without ``gc.freeze()``. Whenever the parse happens to start a full
  collection, that walks all of Airflow's objects (about 85 ms on a 2-core machine, measured): the figure
  jumps by that much, depending on when the collector's thresholds are crossed rather than on the file.

A file over ``BUDGET_MS`` is marked: every DAG processor pays it on every loop.

Usage: python scripts/parse_times.py [--json] [--frozen-only] [DAG_FILE ...]
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
import gc, json, sys, warnings
from airflow.dag_processing.dagbag import DagBag
if sys.argv[2] == "frozen":
    gc.freeze()
bag = DagBag(dag_folder=sys.argv[1])  # safe mode on, as the dag processor runs it
stat = bag.dagbag_stats[0] if bag.dagbag_stats else None
print(json.dumps({
    "duration_ms": stat.duration.total_seconds() * 1000 if stat else None,
    "dags": sorted(bag.dag_ids),
    "import_errors": bag.import_errors,
    "warnings": {k: list(v) for k, v in bag.captured_warnings.items()},
}))
"""


def measure(dag_file: Path, airflow_home: str, fresh: bool = True) -> dict:
    env = dict(
        os.environ,
        AIRFLOW_HOME=airflow_home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
    )

    def parse(gc_mode: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(dag_file), gc_mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = parse("frozen")
    result["fresh_process_ms"] = parse("fresh")["duration_ms"] if fresh else None
    result["file"] = str(dag_file.relative_to(ROOT))
    result["over_budget"] = (result["duration_ms"] or 0) > BUDGET_MS
    return result


def dag_files() -> list[Path]:
    return sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--frozen-only", action="store_true", help="skip the fresh-process figure (one parse per file)"
    )
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parse-times-") as home:
        results = [
            measure(f.resolve(), home, fresh=not args.frozen_only) for f in (args.files or dag_files())
        ]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'DAG file':40} {'parse ms':>9} {'fresh ms':>9}  DAGs")
    for r in results:
        flag = f"  OVER {BUDGET_MS:g} ms" if r["over_budget"] else ""
        print(
            f"{r['file']:40} {r['duration_ms']:9.1f} {r['fresh_process_ms'] or float('nan'):9.1f}  {len(r['dags'])}{flag}"
        )


if __name__ == "__main__":
    main()
