"""Timers: the only module that imports APScheduler.

APScheduler (3.11, `AsyncIOScheduler`, memory job store) is only the alarm clock. The store
is the truth: one job per instant at which pending reminders are due (10,000 reminders due in
the same second are one job, so ringing them is one short loop step, not 10,000 job runs
in one APScheduler wake-up), rebuilt from the store at start-up and whenever
the store says pending reminders changed (a version every change bumps, in any process).
A job that fires for a reminder that no longer applies finds that out in the store and does
nothing, so a stale timer is harmless. Interval jobs run the config watcher and feed polls.

With several replicas, only the scheduler leader (`leading`) keeps reminder timers; the
others keep none and set them all when they take over. Give the scheduler a `FencedStore`
so that a firing under a term that has moved on commits nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from notifier import metrics, service
from notifier.domain.errors import NotLeader
from notifier.store import Store
from notifier.store.engine import is_outage
from notifier.trouble import Trouble

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Most reminders fired in one transaction.
FIRE_BATCH = 500


class Scheduler:
    """Reminder timers mirrored from the store, plus periodic jobs."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        grace: timedelta,
        sync_every: timedelta = timedelta(seconds=2),
        on_fired: Callable[[], None] = lambda: None,
        leading: Callable[[], bool] = lambda: True,
        horizon: timedelta | None = None,
    ) -> None:
        self.store = store
        #: Timers are kept only for reminders due within this of now (None: all), refilled
        #: from the store every half horizon: 100,000 pending reminders cost a few rows.
        self.horizon = horizon
        self._refill_at: datetime | None = None
        self.leading = leading
        self.clock = clock
        self.grace = grace
        self.sync_every = sync_every
        self.on_fired = on_fired
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        )
        self._timers: dict[int, datetime] = {}
        #: The reminders due at each instant: one APScheduler job per instant.
        self._alarms: dict[datetime, set[int]] = {}
        #: Reminders whose timer rang and whose firing is under way.
        self._firing: set[int] = set()
        self._due: list[int] = []
        #: When each rung timer was due, for the lateness metric.
        self._rang: dict[int, datetime | None] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._version: str | None = None
        self._poked = False
        self._poking: asyncio.Task[None] | None = None
        self.last_sync_at: datetime | None = None
        self.fired: dict[str, int] = {}
        #: Each periodic job's failing, by name (one log line each way).
        self._trouble: dict[str, Trouble[datetime]] = {}
        self._running: set[str] = set()

    @property
    def pending(self) -> int:
        """How many reminder timers are set."""
        return len(self._timers)

    @property
    def running(self) -> bool:
        """Whether the timers are running."""
        return bool(self._aps.running)

    async def start(self) -> None:
        """Load every pending reminder from the store and start the clock."""
        await self.sync(force=True)
        self._aps.start()
        self.every(self.sync_every, self.sync, name="reminder-sync")

    def shutdown(self) -> None:
        """Stop every timer; nothing runs after this returns."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def every(self, interval: timedelta, job: Callable[[], Awaitable[Any]], *, name: str) -> None:
        """Run `job` every `interval` (first run after one interval).

        A job that fails (the database away) says so in one line when it starts failing and
        one when it works again, not a traceback at every run. A run still going when the
        next is due (a large feed being applied) is left alone: the next run is skipped
        quietly, not logged every interval.
        """
        self._aps.add_job(
            self._guarded(job, name, interval),
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            id=name,
            name=name,
            replace_existing=True,
            # Skipping is decided in `_guarded` (quietly); APScheduler would warn each time.
            max_instances=3,
        )

    def _guarded(
        self, job: Callable[[], Awaitable[Any]], name: str, interval: timedelta
    ) -> Callable[[], Awaitable[None]]:
        trouble = self._trouble.setdefault(name, Trouble(log))

        async def run() -> None:
            if name in self._running:
                log.debug("%s still running; this run skipped", name)
                return
            self._running.add(name)
            try:
                await job()
            except asyncio.CancelledError:
                # Stopping: the job was cut short on purpose (what it did is idempotent).
                log.debug("%s cancelled by shutdown", name)
                return
            except Exception as exc:
                trouble.failed(
                    "%s failing (%s: %s); it runs again every %ss",
                    name,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:300] if str(exc) else "",
                    interval.total_seconds(),
                    now=self.clock(),
                    exc_info=not is_outage(exc),
                    extra={"action": "job_trouble", "job": name},
                )
                return
            finally:
                self._running.discard(name)
            trouble.recovered(
                "%s working again after %.0fs",
                name,
                now=self.clock(),
                extra={"action": "job_recovered", "job": name},
            )

        return run

    def once(self, when: datetime, job: Callable[[], Awaitable[Any]], *, name: str) -> None:
        """Run `job` once at `when` (at once if it is past)."""
        self._aps.add_job(
            job, DateTrigger(run_date=when), id=name, name=name, replace_existing=True
        )

    def poke(self) -> None:
        """Sync soon (something changed); pokes while a sync runs fold into one more sync.

        A burst of changes (200 a second through the API, say) costs a few syncs, not one
        read of every pending reminder per change.
        """
        self._poked = True
        if self._poking is None or self._poking.done():
            self._poking = asyncio.get_running_loop().create_task(self._sync_while_poked())

    async def _sync_while_poked(self) -> None:
        while self._poked:
            self._poked = False
            try:
                await self.sync()  # cheap unless the pending reminders changed
            except Exception as exc:  # the periodic sync tries again (and says so, once)
                if not is_outage(exc):
                    log.exception("reminder sync failed")

    async def sync(self, *, force: bool = False) -> int:
        """Mirror the store's pending reminders into timers; returns how many changed.

        On a replica that does not lead, drop every timer instead.
        """
        if not self.leading():
            dropped = len(self._timers)
            for reminder_id in list(self._timers):
                self._drop(reminder_id)
            self._version = None
            self.last_sync_at = self.clock()
            if dropped:
                log.info("reminders: %d timers dropped, another replica leads", dropped)
            return dropped
        now = self.clock()
        refill = self._refill_at is not None and now >= self._refill_at
        async with self.store.read() as tx:
            version = await tx.reminders_version()
            if version == self._version and not force and not refill:
                self.last_sync_at = now
                return 0
            until = now + self.horizon if self.horizon is not None else None
            pending = dict(await tx.pending_reminders(before=until))
        if self.horizon is not None:
            # Every reminder is loaded at least half a horizon before it is due.
            self._refill_at = now + self.horizon / 2
        changed = 0
        for reminder_id in [r for r in self._timers if r not in pending]:
            self._drop(reminder_id)
            changed += 1
        for reminder_id, due in pending.items():
            if self._timers.get(reminder_id) == due or reminder_id in self._firing:
                continue
            if reminder_id in self._timers:
                self._drop(reminder_id)  # due at another time now
            self._set(reminder_id, due)
            changed += 1
        self._version = version
        self.last_sync_at = self.clock()
        if changed:
            log.info(
                "reminders: %d timers set, %d changed",
                len(self._timers),
                changed,
                extra={"action": "reminder_sync", "pending": len(self._timers)},
            )
        return changed

    def _set(self, reminder_id: int, due: datetime) -> None:
        self._timers[reminder_id] = due
        ringing = self._alarms.setdefault(due, set())
        ringing.add(reminder_id)
        if len(ringing) == 1:
            self._aps.add_job(
                self._ring,
                DateTrigger(run_date=due),
                args=[due],
                id=_alarm_id(due),
                replace_existing=True,
            )

    def _drop(self, reminder_id: int) -> None:
        due = self._timers.pop(reminder_id)
        ringing = self._alarms.get(due)
        if ringing is None:
            return
        ringing.discard(reminder_id)
        if not ringing:
            del self._alarms[due]
            if self._aps.get_job(_alarm_id(due)) is not None:
                self._aps.remove_job(_alarm_id(due))

    async def _ring(self, due: datetime) -> None:
        # Timers that ring together are fired together: collect them for one tick, then
        # fire the lot, FIRE_BATCH to a transaction.
        for reminder_id in sorted(self._alarms.pop(due, ())):
            self._rang[reminder_id] = self._timers.pop(reminder_id, None)
            self._firing.add(reminder_id)
            self._due.append(reminder_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)
        while self._due:
            batch, self._due = self._due[:FIRE_BATCH], self._due[FIRE_BATCH:]
            now = self.clock()
            for reminder_id in batch:
                due = self._rang.pop(reminder_id, None)
                if due is not None:
                    metrics.REMINDER_LATENESS.observe(max((now - due).total_seconds(), 0.0))
            try:
                outcomes = await service.fire_reminders(
                    self.store, batch, now=now, grace=self.grace
                )
            except NotLeader as exc:  # the new leader fires them
                log.warning(
                    "%d reminders left to the new scheduler leader: %s",
                    len(batch),
                    exc.message,
                    extra={"action": "reminders_handed_over"},
                )
                self._version = None
                self._firing.difference_update(batch)
                continue
            except Exception as exc:  # the timers are gone; the next sync sets them again
                log.warning(
                    "%d reminders could not fire now (%s); they fire when the next sync "
                    "sets them again, late if need be, within the grace",
                    len(batch),
                    type(exc).__name__,
                    exc_info=not is_outage(exc),
                )
                self._version = None
                self._firing.difference_update(batch)
                continue
            self._firing.difference_update(batch)
            for reminder_id, outcome in outcomes.items():
                self.fired[outcome.value] = self.fired.get(outcome.value, 0) + 1
                if outcome is service.ReminderOutcome.EARLY:
                    self._version = None  # the next sync sets the timer again
                log.info(
                    "reminder %d: %s",
                    reminder_id,
                    outcome.value,
                    extra={"action": "reminder", "reminder": reminder_id, "outcome": outcome.value},
                )
            self.on_fired()


def _alarm_id(due: datetime) -> str:
    """The APScheduler job id of the alarm ringing at `due`."""
    return f"due {due.isoformat()}"
