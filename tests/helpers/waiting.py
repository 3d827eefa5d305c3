"""Every wait in the tests: for a condition, with a deadline sized for a loaded machine, and a failure
that says what it waited for, how long, and what it saw last.

A call site gives the time the condition takes on an idle machine, generously; the deadline is
``PATIENCE`` times that (``KANDJI_OOMNITZA_TEST_PATIENCE``, default 4): a CI machine shared with other
jobs, or two CPU burners beside `make test` on two cores, make every process several times slower, and a
passing wait costs nothing extra. Never a fixed sleep: a sleep is either too short under load or
wasted when idle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

PATIENCE = float(os.environ.get("KANDJI_OOMNITZA_TEST_PATIENCE", "4"))
T = TypeVar("T")


def deadline_seconds(idle_seconds: float) -> float:
    """How long a wait allows: its idle allowance, times ``PATIENCE``."""
    return idle_seconds * PATIENCE


def ms(idle_seconds: float) -> float:
    """A browser wait's timeout (Playwright counts in milliseconds), sized as ``deadline_seconds``."""
    return deadline_seconds(idle_seconds) * 1000


def wait_until(
    what: str,
    check: Callable[[], T],
    timeout: float = 60,
    every: float = 1.0,
    *,
    seen: Callable[[], Any] | None = None,
    gave_up: Callable[[], None] | None = None,
) -> T:
    """``check()``'s first truthy answer. ``timeout``: what the condition takes on an idle machine, at
    most; the wait allows ``PATIENCE`` times that. On time-out the test fails naming ``what``, the time
    waited, and ``seen()`` (what was observed last) when given; ``gave_up`` runs first (e.g. to stop a
    process). An exception from ``check`` propagates: a wait is for a condition, not for errors to
    pass."""
    allowed = deadline_seconds(timeout)
    started = time.monotonic()
    while True:
        if result := check():
            return result
        if time.monotonic() - started > allowed:
            if gave_up is not None:
                gave_up()
            last = ""
            if seen is not None:
                try:
                    last = f"; last seen: {str(seen())[-3000:]}"
                except Exception as exc:  # what was seen is a hint, never the failure itself
                    last = f"; reading what was seen failed: {exc!r}"
            pytest.fail(
                f"timed out after {allowed:.0f}s ({timeout:g}s idle allowance x patience {PATIENCE:g}) waiting "
                f"for {what}{last}"
            )
        time.sleep(every)
