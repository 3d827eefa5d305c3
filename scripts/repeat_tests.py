"""Run the same tests N times in a row, each in a fresh pytest session, and stop at the first failure:
how a flaky test is found (`make repeat TESTS=tests/e2e/ui/test_browser.py REPEAT=10`).

A failure is fixed at its cause, never retried away: this prints which run failed and keeps its output.
"""

from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: repeat_tests.py N TEST_PATH... [-- pytest options]")
        return 2
    times, tests = int(argv[0]), argv[1:]
    for run in range(1, times + 1):
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests])
        took = time.monotonic() - started
        if result.returncode != 0:
            print(f"repeat: run {run} of {times} FAILED after {took:.0f}s ({run - 1} passed before it)")
            return result.returncode
        print(f"repeat: run {run} of {times} passed in {took:.0f}s", flush=True)
    print(f"repeat: {times} of {times} runs passed in a row")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
