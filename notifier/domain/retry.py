"""When to try a failed delivery again: exponential backoff with jitter, then give up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: Delay before each attempt: the first is immediate, the last comes about 3.5 days later.
DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Delays between attempts; `jitter` spreads each delay by up to that fraction."""

    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1
    #: A receiver's Retry-After is honoured up to this long; beyond it, this is used.
    max_retry_after: timedelta = timedelta(hours=24)

    def next_attempt(
        self,
        *,
        attempts: int,
        now: datetime,
        random: float,
        retry_after: float | None = None,
    ) -> datetime | None:
        """When to try again after `attempts` failed attempts, or None to give up.

        `random` is a number in [0, 1) from the caller, so this stays pure: the delay is
        the scheduled one, lengthened by up to ``jitter`` of itself, and never shorter than
        the receiver's Retry-After (capped at `max_retry_after`).
        """
        if attempts >= len(self.schedule):
            return None
        delay = self.schedule[attempts]
        delay = delay + delay * (self.jitter * random)
        if retry_after is not None and retry_after > 0:
            asked = min(timedelta(seconds=retry_after), self.max_retry_after)
            delay = max(delay, asked)
        return now + delay
