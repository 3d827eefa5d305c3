"""Client-side throttling that keeps one process under a tenant's request budgets.

Kandji allows 10,000 requests per hour and (observed) 50 per second per tenant. The limiter spaces
requests evenly under the per-second rate, keeps a sliding one-hour window, and slows down when the
server's ``X-RateLimit-Remaining-*`` headers say the shared budget is running low (other tasks and
tools use the same tenant). Across tasks, the ``kandji_api`` Airflow pool bounds concurrency.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from kandji_oomnitza.common.kandji_values import to_int


class RateLimiter:
    def __init__(
        self,
        per_second: float | None,
        per_hour: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.per_hour = per_hour
        self.clock, self.wall_clock, self.sleep = clock, wall_clock, sleep
        self.next_slot = 0.0
        self.paused_until = 0.0
        self.paced_interval = 0.0  # set when the hourly budget runs low
        self.sent: deque[float] = deque()
        self._lock = threading.Lock()  # one limiter serves a hook's worker threads

    def acquire(self) -> None:
        """Block until one more request fits the budgets, then count it. Threads queue for slots:
        each takes the next one under the lock, then sleeps until it comes."""
        with self._lock:
            wait = self._reserve()
        if wait > 0:
            self.sleep(wait)

    def _reserve(self) -> float:
        now = self.clock()
        wait = max(self.next_slot - now, self.paused_until - now, 0.0)
        if self.per_hour:
            while self.sent and self.sent[0] <= now - 3600:
                self.sent.popleft()
            if len(self.sent) >= self.per_hour:
                wait = max(wait, self.sent[0] + 3600 - now)
        if wait > 0:
            now += wait
        self.next_slot = now + max(self.interval, self.paced_interval)
        if self.per_hour:
            self.sent.append(now)
        return wait

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from the server's view of the shared budget (Kong's rate-limit headers)."""
        with self._lock:
            self._observe(headers)

    def _observe(self, headers: Mapping[str, str]) -> None:
        now = self.clock()
        remaining_second = to_int(headers.get("X-RateLimit-Remaining-Second"))
        if remaining_second is not None and remaining_second <= 1:
            self.paused_until = max(self.paused_until, now + 1.0)  # Kong's second window turns over
        remaining_hour = to_int(headers.get("X-RateLimit-Remaining-Hour"))
        limit_hour = to_int(headers.get("X-RateLimit-Limit-Hour")) or self.per_hour or 10_000
        if remaining_hour is None:
            return
        # INFERRED: Kong's hour windows are aligned to the clock hour.
        seconds_left = 3600 - (self.wall_clock() % 3600)
        if remaining_hour <= 0:
            self.paused_until = max(self.paused_until, now + seconds_left)
        elif remaining_hour < max(limit_hour // 20, 50):
            self.paced_interval = seconds_left / remaining_hour  # spread what is left over the hour
        else:
            self.paced_interval = 0.0
