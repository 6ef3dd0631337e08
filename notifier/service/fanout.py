"""A change to many readers: the readers after the first chunk, planned a chunk per
transaction by whichever expander holds the fan-out's lease."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from notifier.domain.models import (
    HistoryEntry,
)
from notifier.domain.outbox import (
    plan_change_deliveries,
)
from notifier.service.reminders import replan
from notifier.store.port import StorePort

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


class _LostFanout(Exception):
    """Another expander took the fan-out over (this one's lease ran out): roll back."""


async def expand_fanout(
    store: StorePort,
    *,
    worker: str,
    clock: Callable[[], datetime],
    lease: timedelta = timedelta(seconds=15),
    on_chunk: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int | None:
    """Plan the rest of one change to many readers, a chunk per transaction.

    Claims the oldest fan-out no live expander holds (None when there is none), then plans
    its readers in id order, `fanout_chunk` at a time, exactly as the change's own
    transaction planned its first chunk (the meeting as the change left it, the same
    instant), and calls `on_chunk` with each chunk's count once committed, so workers
    start on it at once. Reminders of a chunk's readers are planned too, unless the
    meeting has moved on since (the newer change planned them). Returns the deliveries
    queued. A chunk committed twice (this expander died before it knew) queues nothing
    new: delivery ids are stable. When `stop` is set (the daemon is stopping) the fan-out
    is handed back after the chunk in hand, for another expander to go on at once.
    """
    # Looked at after every change: a read first, so that the common case (nothing to
    # plan) does not queue a write behind the change itself on SQLite.
    async with store.read() as tx:
        if not await tx.fanouts_pending():
            return None
    async with store.write() as tx:
        fanout = await tx.claim_fanout(worker=worker, now=clock(), lease=lease)
    if fanout is None:
        return None
    meeting = fanout.meeting
    entry: HistoryEntry | None = None
    queued = 0
    while True:
        try:
            async with store.write() as tx:
                plan = store.planning
                if entry is None:
                    entry = await tx.history_entry(
                        meeting.id, fanout.sequence, zone=meeting.timezone
                    )
                chunk = max(plan.fanout_chunk, 1)
                readers = await tx.subscribers(
                    meeting_id=meeting.id, after=fanout.after, limit=chunk + 1
                )
                more = len(readers) > chunk
                readers = readers[:chunk]
                planned = plan_change_deliveries(
                    meeting,
                    entry,
                    readers,
                    now=fanout.planned_at,
                    audiences=plan.audiences,
                    installation=plan.installation,
                    languages=plan.languages,
                )
                added = await tx.enqueue(planned, now=clock())
                current = await tx.meeting_record(meeting.id)
                if current is not None and current.meeting.sequence == fanout.sequence:
                    await replan(tx, plan, current.meeting, readers, now=clock())
                after = readers[-1].id if more and readers else None
                if not await tx.advance_fanout(
                    fanout, after=after, worker=worker, lease=lease, now=clock()
                ):
                    raise _LostFanout
        except _LostFanout:
            log.warning(
                "fan-out of %s (sequence %d) was taken over by another expander",
                meeting.id,
                fanout.sequence,
                extra={"action": "fanout_lost", "meeting": meeting.id},
            )
            return queued
        queued += added
        if on_chunk is not None:
            on_chunk(added)
        if after is None:
            log.info(
                "%s: sequence %d planned for every reader (%d deliveries after the first chunk)",
                meeting.id,
                fanout.sequence,
                queued,
                extra={"action": "fanout_done", "meeting": meeting.id, "deliveries": queued},
            )
            return queued
        fanout = dataclasses.replace(fanout, after=after)
        if stop is not None and stop.is_set():
            async with store.write() as tx:
                await tx.release_fanout(fanout, worker=worker)
            return queued
