"""Print the reliability table that tests/e2e/integrations/test_reliability.py wrote to artifacts/reliability/
(a JSON file per fault scenario)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[1] / "artifacts" / "reliability"
COLUMNS = ["fault", "state", "kandji_calls", "kandji_faulted", "oomnitza_calls", "oomnitza_faulted",
           "devices", "loaded", "reported", "lost", "duplicates", "seconds"]  # fmt: skip


def main() -> int:
    rows = sorted((json.loads(p.read_text()) for p in REPORTS.glob("*.json")), key=lambda r: r["fault"])
    if not rows:
        print(f"{REPORTS} holds no results: run `make reliability` (or the reliability tests) first")
        return 1
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in COLUMNS) + " |")
    lost = sum(row.get("lost") or 0 for row in rows)
    print(f"\n{len(rows)} fault scenarios; records lost in all: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
