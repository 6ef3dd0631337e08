"""The one rate limit of the HTTP face (`notifier.web.limits.RateLimit`)."""

from __future__ import annotations

import pytest

from notifier.web.limits import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_capacity_then_one_per_period_over_capacity() -> None:
    clock = Clock()
    limit = RateLimit(10, period=3600.0, clock=clock)
    assert [limit.take("203.0.113.5") for _ in range(10)] == [0.0] * 10
    assert limit.take("203.0.113.5") == pytest.approx(360.0)  # one every 6 minutes
    assert limit.take("198.51.100.7") == 0.0  # another client's bucket is full
    clock.now += 359
    assert limit.take("203.0.113.5") == pytest.approx(1.0)
    clock.now += 1
    assert limit.take("203.0.113.5") == 0.0
    assert limit.take("203.0.113.5") > 0


def test_a_refusal_spends_nothing() -> None:
    clock = Clock()
    limit = RateLimit(1, period=60.0, clock=clock)
    assert limit.take("a") == 0.0
    for _ in range(100):
        assert limit.take("a") > 0
    clock.now += 60
    assert limit.take("a") == 0.0


def test_memory_is_bounded_by_forgetting_full_buckets_first() -> None:
    clock = Clock()
    limit = RateLimit(5, period=60.0, clock=clock, keys=100)
    limit.take("busy")
    limit.take("busy")
    clock.now += 1
    for n in range(150):
        limit.take(f"client-{n}")
        clock.now += 0.001
    assert len(limit.buckets) <= 101
    # A key forgotten is a full bucket again: the limit never tightens by forgetting.
    clock.now += 120
    assert all(limit.take(f"client-{n}") == 0.0 for n in range(150))
