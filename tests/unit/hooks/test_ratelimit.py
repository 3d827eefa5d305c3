"""hooks/ratelimit.py: client-side pacing under Kandji's per-second and hourly limits."""

from __future__ import annotations

import pytest

from kandji_oomnitza.hooks.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(per_second, per_hour, clock):
    return RateLimiter(per_second, per_hour, clock=clock.time, wall_clock=clock.time, sleep=clock.sleep)


def test_limiter_spaces_requests_under_the_per_second_rate():
    clock = FakeClock()
    rl = limiter(50, None, clock)
    for _ in range(101):
        rl.acquire()
    assert clock.now - 1000.0 == pytest.approx(2.0)


def test_limiter_holds_the_hourly_budget():
    clock = FakeClock()
    rl = limiter(None, 10, clock)
    for _ in range(10):
        rl.acquire()
    assert clock.slept == []
    rl.acquire()
    assert clock.slept == [pytest.approx(3600.0)]


def test_limiter_backs_off_when_the_server_says_the_budget_is_low():
    clock = FakeClock()
    clock.now = 3600 * 100 + 1800.0  # half an hour left in Kong's window
    rl = limiter(50, 10_000, clock)
    rl.observe({"X-RateLimit-Remaining-Second": "1"})
    rl.acquire()
    assert clock.slept == [pytest.approx(1.0)]
    rl.observe({"X-RateLimit-Remaining-Hour": "100", "X-RateLimit-Limit-Hour": "10000"})
    assert rl.paced_interval == pytest.approx((1800.0 - 1.0) / 100)
    rl.observe({"X-RateLimit-Remaining-Hour": "0"})
    assert rl.paused_until > clock.now + 1700
