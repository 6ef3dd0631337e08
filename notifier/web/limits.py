"""One rate limit for the HTTP face: a token bucket per key (an API token's name, a
client's address), used by the API (`api_tokens` callers, signed pushes) and the public
forms alike.

A bucket holds up to `capacity` requests and refills continuously at `capacity` per
`period` seconds: a caller may send `capacity` at once, then one every `period / capacity`
seconds. Buckets live in this process's memory, at most `keys` of them; past that the ones
that have refilled completely (a full bucket is the same as none) are forgotten first.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimit:
    """`capacity` requests per `period` seconds for each key."""

    def __init__(
        self,
        capacity: int,
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        keys: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.period = period
        self.clock = clock
        self.keys = keys
        self.buckets: dict[str, tuple[float, float]] = {}

    def _level(self, bucket: tuple[float, float] | None, now: float) -> float:
        if bucket is None:
            return float(self.capacity)
        level, updated = bucket
        return min(float(self.capacity), level + (now - updated) * self.capacity / self.period)

    def take(self, key: str) -> float:
        """Spend one request of `key`: 0 when it may go, else the seconds until it may."""
        now = self.clock()
        level = self._level(self.buckets.get(key), now)
        if level < 1:
            return (1 - level) * self.period / self.capacity
        self.buckets[key] = (level - 1, now)
        if len(self.buckets) > self.keys:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop the buckets that are full again, or (a flood of new keys) the oldest half."""
        full = [k for k, b in self.buckets.items() if self._level(b, now) >= self.capacity]
        for key in (
            full or sorted(self.buckets, key=lambda k: self.buckets[k][1])[: len(self.buckets) // 2]
        ):
            del self.buckets[key]
