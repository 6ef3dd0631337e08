"""Trouble: one log line when a loop starts failing, one when it works again.

The daemon's loops (the outbox workers, the fan-out expander, the lease renewal, the
periodic jobs, the config watcher, the wait for the database, the bounce mailbox) retry
every poll while the database or a server is away. Logging each failed poll would bury
the one line that matters under one a second; logging none would hide the outage. Each
loop says it once when the trouble starts and, where it helps, once when it ends with how
long it lasted. `Trouble` is that state, written once; each loop keeps its own words.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from datetime import datetime, timedelta
from typing import Generic, TypeVar

#: What a loop's clock reads: its `datetime` clock (a fake one in tests) or monotonic seconds.
Instant = TypeVar("Instant", datetime, float)


class Trouble(Generic[Instant]):
    """Whether a loop is failing now and since when, logging only the changes.

    A loop of several parts (the outbox worker's parallel batches) names each `part`:
    the trouble starts when the first part fails and ends when the last works again, so
    parts recovering one by one do not say "working again" while another still fails.
    Pure but for `log`: the caller reads the clock and hands `now` in.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        #: When the trouble started (None: none now).
        self.since: Instant | None = None
        self._failing: set[Hashable] = set()

    @property
    def failing(self) -> bool:
        """Whether the loop is in trouble now."""
        return self.since is not None

    def failed(
        self,
        message: str,
        /,
        *args: object,
        now: Instant,
        part: Hashable = None,
        extra: Mapping[str, object] | None = None,
        exc_info: bool = False,
    ) -> bool:
        """`part` failed at `now`. If that starts the trouble, log ``message % args`` as a
        warning (with `extra` and, if asked, the traceback) and return True; a failure
        while already in trouble logs nothing and returns False."""
        self._failing.add(part)
        if self.since is not None:
            return False
        self.since = now
        # stacklevel: the record tells of the loop that failed, not of this class.
        self.log.warning(message, *args, extra=extra, exc_info=exc_info, stacklevel=2)
        return True

    def recovered(
        self,
        message: str | None = None,
        /,
        *args: object,
        now: Instant,
        part: Hashable = None,
        extra: Mapping[str, object] | None = None,
    ) -> float | None:
        """`part` worked at `now`. If that ends the trouble (no part fails any more),
        return how many seconds it lasted and, given a `message`, log
        ``message % (*args, seconds)`` as a warning: the duration is its last argument.
        Returns None, logging nothing, when there was no trouble to end."""
        self._failing.discard(part)
        if self.since is None or self._failing:
            return None
        lasted = now - self.since
        seconds = lasted.total_seconds() if isinstance(lasted, timedelta) else lasted
        self.since = None
        if message is not None:
            self.log.warning(message, *args, seconds, extra=extra, stacklevel=2)
        return seconds


__all__ = ["Instant", "Trouble"]
