"""A change to many readers: its first chunk planned in its own transaction, the rest by
expanders a chunk at a time, exactly as one transaction would have planned them; on both
backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest

from notifier import service
from notifier.domain.audiences import Audiences
from notifier.domain.models import Meeting, MeetingStatus, StatusChange, Subscriber
from notifier.domain.outbox import plan_change_deliveries
from notifier.domain.reminders import ReminderState
from notifier.store import Store
from notifier.store.records import StoredReminder

CHUNK = 3


@pytest.fixture
async def chunked(database_url: str) -> AsyncIterator[Store]:
    """A store whose changes plan 3 readers in their own transaction."""
    opened = await Store.open(database_url, fanout_chunk=CHUNK)
    try:
        yield opened
    finally:
        await opened.close()


async def setup(
    store: Store,
    meeting: Meeting,
    readers: list[Subscriber],
    now: datetime,
) -> None:
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        await tx.add_subscribers(readers, now=now)


async def queued_ids(store: Store) -> list[str]:
    async with store.read() as tx:
        return sorted(d.id for d in await tx.deliveries(limit=10_000))


async def pending(store: Store) -> list[StoredReminder]:
    async with store.read() as tx:
        return [r for r in await tx.meeting_reminders("talks") if r.state is ReminderState.PENDING]


def clock_at(now: datetime) -> Callable[[], datetime]:
    return lambda: now


async def test_the_rest_is_planned_in_chunks_exactly_as_one_transaction_would(
    chunked: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    meeting = meeting_factory(id="talks")
    # Eleven readers of the meeting (email, webhook-less), one of another meeting.
    readers = [subscriber_factory(id=f"r{n:02d}", meetings=("talks",)) for n in range(11)]
    readers.append(subscriber_factory(id="r05-other", meetings=("elsewhere",)))
    await setup(chunked, meeting, readers, now)
    change = StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED, reason="ill")

    result = await service.apply_status_change(chunked, change, now=now)

    assert result.deliveries == CHUNK  # the change's own transaction: the first chunk
    async with chunked.read() as tx:
        assert await tx.fanouts_pending() == 1
    chunks: list[int] = []
    later = now + timedelta(seconds=5)
    added = await service.expand_fanout(
        chunked, worker="x", clock=clock_at(later), on_chunk=chunks.append
    )
    assert added == 8
    assert chunks == [3, 3, 2]
    assert await service.expand_fanout(chunked, worker="x", clock=clock_at(later)) is None
    async with chunked.read() as tx:
        assert await tx.fanouts_pending() == 0
        entry = await tx.history_entry("talks", result.meeting.sequence, zone="UTC")
    # The same deliveries, ids, notices and due times as planning every reader at once.
    whole = plan_change_deliveries(
        result.meeting,
        entry,
        readers[:11],
        now=now,
        audiences=Audiences(),
        installation=chunked.installation or "",
    )
    assert await queued_ids(chunked) == sorted(d.id for d in whole)
    async with chunked.read() as tx:
        stored = await tx.deliveries(limit=10_000)
    assert {d.notice_id for d in stored} == {d.notice_id for d in whole}
    assert {d.next_attempt_at for d in stored} == {now}


async def test_an_expander_that_died_is_taken_over_and_nothing_is_queued_twice(
    chunked: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    await setup(
        chunked,
        meeting_factory(id="talks"),
        [subscriber_factory(id=f"r{n:02d}", meetings=("talks",)) for n in range(8)],
        now,
    )
    change = StatusChange(meeting_id="talks", status=MeetingStatus.CANCELLED, reason="off")
    await service.apply_status_change(chunked, change, now=now)
    # Leases run on PostgreSQL's clock (replicas' clocks may differ), on SQLite on the
    # caller's: a short lease, waited out for real, with the clock moved past it too.
    lease = timedelta(seconds=0.5)
    # Expander A claims the fan-out and dies before planning anything.
    async with chunked.write() as tx:
        claimed = await tx.claim_fanout(worker="a", now=now, lease=lease)
    assert claimed is not None
    assert claimed.after == "r02"
    # Within A's lease nobody else takes it...
    assert await service.expand_fanout(chunked, worker="b", clock=clock_at(now)) is None
    # ...after it, B does, and plans everything.
    await asyncio.sleep(0.6)
    after_lease = now + lease + timedelta(seconds=1)
    assert await service.expand_fanout(chunked, worker="b", clock=clock_at(after_lease)) == 5
    assert len(await queued_ids(chunked)) == 8
    # A comes back: its claim is gone, so it cannot move the fan-out on.
    async with chunked.write() as tx:
        assert not await tx.advance_fanout(
            claimed, after=None, worker="a", lease=lease, now=after_lease
        )
    assert len(await queued_ids(chunked)) == 8


async def test_a_stopping_expander_hands_the_rest_back_after_its_chunk(
    chunked: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    await setup(
        chunked,
        meeting_factory(id="talks"),
        [subscriber_factory(id=f"r{n:02d}", meetings=("talks",)) for n in range(10)],
        now,
    )
    change = StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED, reason="ill")
    await service.apply_status_change(chunked, change, now=now)
    stop = asyncio.Event()
    planned = await service.expand_fanout(
        chunked, worker="a", clock=clock_at(now), on_chunk=lambda _: stop.set(), stop=stop
    )
    assert planned == CHUNK  # one chunk, then handed back
    # Another expander goes on at once, without waiting out a lease.
    assert await service.expand_fanout(chunked, worker="b", clock=clock_at(now)) == 4
    assert len(await queued_ids(chunked)) == 10


async def test_later_chunks_plan_reminders_unless_the_meeting_moved_on(
    chunked: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    meeting = meeting_factory(id="talks", starts_at=now + timedelta(days=3))
    readers = [
        subscriber_factory(id=f"r{n:02d}", meetings=("talks",), reminders=(timedelta(hours=1),))
        for n in range(7)
    ]
    await setup(chunked, meeting, readers, now)
    moved = now + timedelta(days=4)
    change = StatusChange(meeting_id="talks", status=MeetingStatus.RESCHEDULED, starts_at=moved)
    result = await service.apply_status_change(chunked, change, now=now)
    assert await service.expand_fanout(chunked, worker="x", clock=clock_at(now)) == 4
    planned = await pending(chunked)
    assert sorted(r.subscriber_id for r in planned) == [r.id for r in readers]
    assert {r.sequence for r in planned} == {result.meeting.sequence}

    # A change whose expansion is overtaken by the next one: the older one's later chunks
    # still announce it, but plan no reminders for the superseded time.
    later = moved + timedelta(days=1)
    await service.apply_status_change(
        chunked,
        StatusChange(meeting_id="talks", status=MeetingStatus.RESCHEDULED, starts_at=later),
        now=now,
    )
    async with chunked.write() as tx:  # the second change's fan-out waits behind this one
        second = await tx.claim_fanout(worker="hold", now=now, lease=timedelta(hours=1))
    await service.apply_status_change(
        chunked,
        StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED, reason="again"),
        now=now + timedelta(seconds=1),
    )
    assert second is not None
    async with chunked.write() as tx:
        await tx.release_fanout(second, worker="hold")
    while await service.expand_fanout(chunked, worker="x", clock=clock_at(now)) is not None:
        pass
    assert await pending(chunked) == []  # postponed: no reminder for any time
    assert len(await queued_ids(chunked)) == 7 * 3  # every change reached every reader


async def test_a_coalescing_meeting_plans_every_reader_in_the_change(
    chunked: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    await setup(
        chunked,
        meeting_factory(id="talks", coalesce=timedelta(minutes=2)),
        [subscriber_factory(id=f"r{n:02d}", meetings=("talks",)) for n in range(7)],
        now,
    )
    change = StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED, reason="ill")
    assert (await service.apply_status_change(chunked, change, now=now)).deliveries == 7
    async with chunked.read() as tx:
        assert await tx.fanouts_pending() == 0
