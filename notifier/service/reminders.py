"""Reminders: planned again when a meeting or its readers change, fired when due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from notifier.domain.machine import ON_SCHEDULE
from notifier.domain.matching import subscriber_matches
from notifier.domain.models import (
    EventKind,
    Meeting,
    Subscriber,
)
from notifier.domain.outbox import (
    Delivery,
    plan_reminder_deliveries,
)
from notifier.domain.planning import Planning
from notifier.domain.reminders import ReminderState, plan_reminders
from notifier.store.port import StorePort, TransactionPort

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


async def replan(
    tx: TransactionPort,
    plan: Planning,
    meeting: Meeting,
    subscribers: list[Subscriber],
    *,
    now: datetime,
) -> None:
    """Plan `meeting`'s reminders afresh, in the transaction that changed it (or its readers)."""
    await tx.replace_reminders(
        meeting,
        plan_reminders(meeting, subscribers, now=now, audiences=plan.audiences),
        on_schedule=meeting.status in ON_SCHEDULE,
    )


class ReminderOutcome(StrEnum):
    """What became of a reminder when its instant came."""

    #: Sent on time.
    FIRED = "fired"
    #: Sent after its instant (the daemon was down then), within the grace period.
    LATE = "late"
    #: Its instant passed longer ago than the grace period: recorded, not sent.
    MISSED = "missed"
    #: Superseded: the meeting moved, was postponed or cancelled, or the reader left.
    WITHDRAWN = "withdrawn"
    #: Already handled (by another scheduler, or before a restart).
    GONE = "gone"
    #: Its instant has not come: left pending (a timer that rang early).
    EARLY = "early"


async def fire_reminder(
    store: StorePort, reminder_id: int, *, now: datetime, grace: timedelta
) -> ReminderOutcome:
    """Fire one reminder if it is still due (see `fire_reminders`)."""
    return (await fire_reminders(store, [reminder_id], now=now, grace=grace))[reminder_id]


async def fire_reminders(
    store: StorePort, reminder_ids: list[int], *, now: datetime, grace: timedelta
) -> dict[int, ReminderOutcome]:
    """Fire reminders that are still due: queue their deliveries and mark them, together.

    A reminder fires only for the meeting sequence it was planned for, while the meeting is
    on schedule and the subscriber still wants that reminder; otherwise it is withdrawn. One
    whose instant passed more than `grace` ago is recorded as missed. Reminders that come
    due together are fired in one transaction with a handful of statements, so a crash at
    any point neither loses nor doubles any of them, and a burst stays cheap.
    """
    outcomes: dict[int, ReminderOutcome] = {}
    async with store.write() as tx:
        plan = store.planning
        found = await tx.reminders_by_id(reminder_ids, for_update=True)
        meetings = {
            meeting_id: await tx.meeting(meeting_id)
            for meeting_id in sorted({r.meeting_id for r in found.values()})
        }
        readers = {
            record.subscriber.id: record.subscriber
            for record in await tx.subscriber_records(
                ids=sorted({r.subscriber_id for r in found.values()})
            )
        }
        planned: list[Delivery] = []
        finished: list[tuple[int, ReminderState, bool]] = []
        for reminder_id in reminder_ids:
            reminder = found.get(reminder_id)
            if reminder is None or reminder.state is not ReminderState.PENDING:
                outcomes[reminder_id] = ReminderOutcome.GONE
                continue
            meeting = meetings.get(reminder.meeting_id)
            subscriber = readers.get(reminder.subscriber_id)
            if (
                meeting is None
                or subscriber is None
                or meeting.sequence != reminder.sequence
                or meeting.status not in ON_SCHEDULE
                or reminder.offset not in subscriber.reminders
                or not subscriber_matches(subscriber, meeting, EventKind.REMINDER, plan.audiences)
            ):
                finished.append((reminder_id, ReminderState.WITHDRAWN, False))
                outcomes[reminder_id] = ReminderOutcome.WITHDRAWN
                continue
            lateness = now - reminder.due_at
            if lateness < -EARLY_TOLERANCE:
                outcomes[reminder_id] = ReminderOutcome.EARLY
                continue
            if lateness > grace:
                finished.append((reminder_id, ReminderState.MISSED, False))
                log.warning(
                    "reminder %d (%s, %s before %s) missed by %s",
                    reminder_id,
                    reminder.subscriber_id,
                    reminder.offset,
                    reminder.meeting_id,
                    lateness,
                    extra={"action": "reminder_missed", "reminder": reminder_id},
                )
                outcomes[reminder_id] = ReminderOutcome.MISSED
                continue
            late = lateness > LATE_AFTER
            planned += plan_reminder_deliveries(
                meeting,
                subscriber,
                reminder.offset,
                now=reminder.due_at,
                late=late,
                audiences=plan.audiences,
                installation=plan.installation,
                languages=plan.languages,
            )
            finished.append((reminder_id, ReminderState.FIRED, late))
            outcomes[reminder_id] = ReminderOutcome.LATE if late else ReminderOutcome.FIRED
        await tx.enqueue(planned, now=now)
        await tx.finish_reminders(finished, at=now)
    return outcomes


#: A reminder fired more than this after its instant is marked late.
LATE_AFTER = timedelta(seconds=30)
#: Timers may ring this much before their instant (clock granularity) and still fire.
EARLY_TOLERANCE = timedelta(seconds=1)


async def replan_all(tx: TransactionPort, plan: Planning, *, now: datetime) -> None:
    """Plan every meeting's reminders afresh for the current subscribers (after who is
    subscribed, or to what, changed)."""
    meetings = [record.meeting for record in await tx.meeting_records()]
    # A page of readers at a time (`fanout_chunk`), so 100,000 readers are never all in
    # memory; each page adds its readers' reminders (the first also withdraws stale ones).
    page = max(plan.fanout_chunk, 500)
    after: str | None = None
    while True:
        readers = await tx.subscribers(after=after, limit=page)
        for meeting in meetings:
            await replan(tx, plan, meeting, readers, now=now)
        if len(readers) < page:
            return
        after = readers[-1].id
