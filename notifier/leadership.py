"""Scheduler leadership: which one of several replicas runs reminder timers and feed polls.

Every replica serves the API and delivers from the shared outbox; only the holder of the
``scheduler`` lease sets reminder timers and polls feeds. The lease is a row (holder, term,
expiry) renewed every `renew`; when the holder stops renewing, another replica takes it
once it has expired, with the term raised by one. Liveness comes from the expiry (a dead
leader is replaced within `ttl + renew`); safety does not depend on clocks at all: the
term is a fencing token that every leader-only transaction checks and share-locks
(`FencedStore`), so a paused or cut-off former leader cannot commit anything once another
replica has taken over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from notifier import metrics
from notifier.store import FencedStore, Lease, Store
from notifier.trouble import Trouble
from notifier.waiting import wait_any

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"


def replica_name() -> str:
    """A name for this process, unique across restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership:
    """Holds, renews and gives up the scheduler lease for this replica."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        ttl: timedelta,
        name: str = SCHEDULER,
        holder: str | None = None,
        sole: bool = False,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.name = name
        self.holder = holder or replica_name()
        self.on_change = on_change
        #: This process owns the database alone (SQLite): take the lease without waiting.
        self.sole = sole
        self._lease: Lease | None = None
        #: Until when this replica may act as leader without another renewal, by its clock.
        self._valid_until: datetime | None = None
        self.fenced = FencedStore(store, self.current)
        #: Renewing failing (the database away): one log line each way.
        self._trouble: Trouble[datetime] = Trouble(log)

    @property
    def leading(self) -> bool:
        """Whether this replica holds the lease now."""
        return self.current() is not None

    @property
    def term(self) -> int | None:
        """The term this replica holds, if it leads."""
        lease = self.current()
        return lease.term if lease else None

    def current(self) -> Lease | None:
        """The lease this replica holds, or None (never one it could not renew in time).

        A sole process (SQLite) keeps its lease however late a renewal is: nothing else may
        take it, and a busy database must not cost it its timers.
        """
        if self._lease is None or self._valid_until is None:
            return None
        if not self.sole and self.clock() >= self._valid_until:
            self._set(None, reason="lease expired before it could be renewed")
            return None
        return self._lease

    async def tick(self) -> bool:
        """Take or renew the lease if it is free or ours; returns whether this replica leads."""
        started = self.clock()
        try:
            async with self.store.write() as tx:
                lease = await tx.acquire_lease(
                    self.name, self.holder, now=started, ttl=self.ttl, force=self.sole
                )
                holder = None if lease else await tx.lease(self.name)
        except Exception as exc:  # the database is unreachable: lead on only while the lease lasts
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            self._trouble.failed(
                "scheduler lease not renewed: %s (retrying)",
                reason,
                now=started,
                extra={"action": "lease_error"},
            )
            return self.current() is not None
        self._trouble.recovered(
            "scheduler lease reachable again after %.0fs",
            now=started,
            extra={"action": "lease_back"},
        )
        if lease is None:
            self._set(None, reason=f"held by {holder.holder if holder else 'another replica'}")
            return False
        self._valid_until = started + self.ttl
        self._set(lease, reason="renewed")
        return True

    async def run(self, stop: asyncio.Event, *, every: timedelta) -> None:
        """Tick every `every` until `stop` is set (a renewal that runs late is not doubled)."""
        while not stop.is_set():
            await self.tick()
            await wait_any(stop, timeout=every.total_seconds())

    async def release(self) -> None:
        """Give the lease up at once (on a graceful stop) so another replica takes over."""
        lease = self._lease
        self._set(None, reason="stopping")
        if lease is None:
            return
        try:
            async with self.store.write() as tx:
                await tx.release_lease(lease, now=self.clock())
        except Exception as exc:  # it expires on its own
            log.warning("scheduler lease not released: %s", exc)

    def _set(self, lease: Lease | None, *, reason: str) -> None:
        before = self._lease
        self._lease = lease
        if lease is None:
            self._valid_until = None
        metrics.LEADER.set(1 if lease else 0)
        metrics.LEADER_TERM.set(lease.term if lease else 0)
        if (before.term if before else None) == (lease.term if lease else None):
            return
        if lease is not None:
            log.info(
                "this replica (%s) leads the scheduler, term %d",
                self.holder,
                lease.term,
                extra={"action": "leader", "term": lease.term, "holder": self.holder},
            )
        else:
            (log.info if reason == "stopping" else log.warning)(
                "this replica (%s) no longer leads the scheduler: %s",
                self.holder,
                reason,
                extra={"action": "follower", "holder": self.holder},
            )
        self.on_change(lease is not None)
