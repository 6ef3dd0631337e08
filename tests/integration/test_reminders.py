"""Reminders against a real store on both backends: planning, moving, withdrawing, firing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from notifier import service
from notifier.compose import utcnow
from notifier.domain.models import (
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
)
from notifier.metrics import REGISTRY
from notifier.scheduler import Scheduler
from notifier.service import ReminderOutcome
from notifier.store import Store

S = MeetingStatus
MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def reader(**kw: object) -> Subscriber:
    values: dict[str, object] = {
        "id": "press",
        "email": "press@example.org",
        "reminders": (timedelta(hours=1), timedelta(minutes=15)),
        "source": Source.API,
    }
    values.update(kw)
    return Subscriber(**values)  # type: ignore[arg-type]


async def seed(
    store: Store, starts_at: datetime, *subscribers: Subscriber, now: datetime = NOW
) -> Meeting:
    meeting = Meeting(
        id="talks",
        title="Talks",
        timezone="Europe/Moscow",
        starts_at=starts_at,
        status=S.CLEARED,
        source=Source.API,
    )
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        for subscriber in subscribers:
            await tx.save_subscriber(subscriber, now=now)
    # Planning happens with every change; a confirmation plans the first reminders.
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.CONFIRMED), now=now
    )
    return meeting


async def pending(store: Store) -> list[tuple[str, timedelta, datetime, int]]:
    async with store.read() as tx:
        ids = [rid for rid, _ in await tx.pending_reminders()]
        found = [await tx.reminder(rid) for rid in ids]
    return [(r.subscriber_id, r.offset, r.due_at, r.sequence) for r in found if r]


async def reminder_ids(store: Store) -> list[int]:
    async with store.read() as tx:
        return [rid for rid, _ in await tx.pending_reminders()]


async def reminder_deliveries(store: Store) -> list[tuple[str, int, str]]:
    async with store.read() as tx:
        found = await tx.deliveries(limit=1000)
        said = await tx.notices([d.notice_id for d in found])
    return sorted(
        (d.subscriber_id, d.sequence, said[d.notice_id]["data"]["offset"])
        for d in found
        if d.kind.value == "meeting.reminder"
    )


async def test_a_reschedule_moves_every_pending_reminder(store: Store) -> None:
    six = datetime(2026, 3, 2, 18, 0, tzinfo=MOSCOW)
    await seed(store, six, reader())
    assert await pending(store) == [
        ("press", timedelta(hours=1), six - timedelta(hours=1), 1),
        ("press", timedelta(minutes=15), six - timedelta(minutes=15), 1),
    ]
    old = await reminder_ids(store)
    nine = datetime(2026, 3, 2, 21, 0, tzinfo=MOSCOW)
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.RESCHEDULED, starts_at=nine), now=NOW
    )
    assert await pending(store) == [
        ("press", timedelta(hours=1), nine - timedelta(hours=1), 2),
        ("press", timedelta(minutes=15), nine - timedelta(minutes=15), 2),
    ]
    # A timer left over for 18:00 fires into nothing: it was planned for sequence 1.
    at_five = six - timedelta(hours=1)
    assert await service.fire_reminder(store, old[0], now=at_five, grace=GRACE) is (
        ReminderOutcome.GONE
    )
    assert await reminder_deliveries(store) == []
    new = await reminder_ids(store)
    assert await service.fire_reminder(store, new[0], now=at_five, grace=GRACE) is (
        ReminderOutcome.EARLY
    )
    at_eight = nine - timedelta(hours=1)
    assert await service.fire_reminder(store, new[0], now=at_eight, grace=GRACE) is (
        ReminderOutcome.FIRED
    )
    assert await service.fire_reminder(store, new[0], now=at_eight, grace=GRACE) is (
        ReminderOutcome.GONE
    )
    assert await reminder_deliveries(store) == [("press", 2, "1h")]


async def test_postponing_cancelling_or_concluding_withdraws_them(store: Store) -> None:
    await seed(store, datetime(2026, 3, 2, 18, 0, tzinfo=MOSCOW), reader())
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.POSTPONED, reason="unwell"), now=NOW
    )
    assert await pending(store) == []
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.CLEARED), now=NOW
    )
    assert len(await pending(store)) == 2  # back on schedule: planned again
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.CANCELLED), now=NOW
    )
    assert await pending(store) == []


async def test_a_reminder_missed_while_down_is_sent_late_within_grace_else_recorded(
    store: Store,
) -> None:
    starts = NOW + timedelta(hours=1, minutes=5)
    await seed(store, starts, reader(reminders=(timedelta(hours=1), timedelta(minutes=15))))
    hour, quarter = await reminder_ids(store)
    # The daemon comes back 8 minutes after the 1h reminder's instant: within grace.
    back = starts - timedelta(hours=1) + timedelta(minutes=8)
    assert await service.fire_reminder(store, hour, now=back, grace=GRACE) is ReminderOutcome.LATE
    # ... and 20 minutes after the 15m reminder's: past grace.
    much_later = starts - timedelta(minutes=15) + timedelta(minutes=20)
    assert await service.fire_reminder(store, quarter, now=much_later, grace=GRACE) is (
        ReminderOutcome.MISSED
    )
    async with store.read() as tx:
        late = await tx.reminder(hour)
        missed = await tx.reminder(quarter)
        found = await tx.deliveries(limit=10)
        said = await tx.notices([d.notice_id for d in found])
    assert late is not None
    assert late.state == "fired"
    assert late.late
    assert missed is not None
    assert missed.state == "missed"
    (delivery,) = [d for d in found if d.kind.value == "meeting.reminder"]
    assert said[delivery.notice_id]["data"]["late"] is True


async def test_a_reader_who_no_longer_wants_it_gets_nothing(store: Store) -> None:
    await seed(store, datetime(2026, 3, 2, 18, 0, tzinfo=MOSCOW), reader())
    first = (await reminder_ids(store))[0]
    async with store.write() as tx:
        await tx.save_subscriber(reader(reminders=(timedelta(minutes=15),)), now=NOW)
    due = datetime(2026, 3, 2, 17, 0, tzinfo=MOSCOW)
    assert await service.fire_reminder(store, first, now=due, grace=GRACE) is (
        ReminderOutcome.WITHDRAWN
    )
    assert await reminder_deliveries(store) == []


async def test_the_scheduler_fires_at_the_instant_of_the_latest_time(store: Store) -> None:
    now = utcnow()
    start = now + timedelta(seconds=4)
    await seed(store, start, reader(reminders=(timedelta(seconds=2),)), now=now)
    scheduler = Scheduler(store, clock=utcnow, grace=GRACE, sync_every=timedelta(milliseconds=200))
    observed = REGISTRY.get_sample_value("notifier_reminder_lateness_seconds_count") or 0.0
    await scheduler.start()
    try:
        assert scheduler.pending == 1
        moved = start + timedelta(seconds=2)
        await service.apply_status_change(
            store,
            StatusChange(meeting_id="talks", status=S.RESCHEDULED, starts_at=moved),
            now=utcnow(),
        )
        await asyncio.sleep(0.5)
        assert scheduler.pending == 1  # moved, not added
        # Past the new instant (start - 2s) by a second, but before the old one would matter.
        wait = (moved - timedelta(seconds=1) - utcnow()).total_seconds()
        await asyncio.sleep(max(wait, 0))
    finally:
        scheduler.shutdown()
    assert scheduler.fired == {"fired": 1}
    assert REGISTRY.get_sample_value("notifier_reminder_lateness_seconds_count") == observed + 1
    async with store.read() as tx:
        (fired,) = [r for r in await tx.meeting_reminders("talks") if r.state == "fired"]
    assert fired.sequence == 2
    assert fired.fired_at is not None
    lateness = fired.fired_at - (moved - timedelta(seconds=2))
    assert timedelta(0) <= lateness < timedelta(seconds=1)
    assert await reminder_deliveries(store) == [("press", 2, "2s")]


async def test_the_version_moves_only_when_pending_reminders_change(store: Store) -> None:
    await seed(store, NOW + timedelta(days=1), reader(), reader(id="quiet", reminders=()))

    async def version() -> str:
        async with store.read() as tx:
            return await tx.reminders_version()

    before = await version()
    # A details-only replan that plans the same reminders leaves it alone.
    async with store.write() as tx:
        meeting = await tx.meeting("talks")
        assert meeting is not None
        await service.replan(tx, store.planning, meeting, await tx.subscribers(), now=NOW)
    assert await version() == before
    async with store.write() as tx:
        await tx.retire_subscriber("quiet", now=NOW)  # had no reminders
    assert await version() == before
    async with store.write() as tx:
        await tx.retire_subscriber("press", now=NOW)
    assert await version() != before
    after_retire = await version()
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=S.POSTPONED), now=NOW
    )
    assert await version() == after_retire  # nothing was pending any more
