"""The store contract, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite

from notifier.domain.errors import Conflict
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    QuietHours,
    Source,
    Subscriber,
    WebhookEndpoint,
)
from notifier.store import Store, migrate
from notifier.store.records import Counts
from notifier.store.tables import UTCDateTime, metadata

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with store.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await migrate.current_revision(store.engine) == migrate.head_revision()


async def test_upgrading_twice_is_harmless(store: Store, database_url: str) -> None:
    again = await Store.open(database_url)
    await again.close()
    assert await migrate.current_revision(store.engine) == migrate.head_revision()


async def test_a_meeting_round_trips_with_its_zone_and_instants(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    moscow = ZoneInfo("Europe/Moscow")
    meeting = meeting_factory(
        id="talks",
        starts_at=datetime(2026, 3, 2, 19, 0, tzinfo=moscow),
        ends_at=datetime(2026, 3, 2, 23, 0, tzinfo=moscow),
        participants=("A", "B"),
        conditions=("health clearance",),
        tags=("bilateral", "moscow"),
        description="Торговля, инвестиции",
        sequence=2,
        status=MeetingStatus.POSTPONED,
    )
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now, file_state="x")
    async with store.read() as tx:
        record = await tx.meeting_record("talks")
    assert record is not None
    assert record.meeting == meeting
    assert record.meeting.starts_at.tzinfo == moscow
    assert record.meeting.starts_at.hour == 19
    assert record.file_state == "x"
    assert record.created_at == now


async def test_a_taken_meeting_id_is_a_conflict(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    async with store.write() as tx:
        await tx.insert_meeting(meeting_factory(id="talks"), now=now)
    with pytest.raises(Conflict, match="already exists"):
        async with store.write() as tx:
            await tx.insert_meeting(meeting_factory(id="talks"), now=now)


async def test_an_update_from_a_stale_sequence_is_a_conflict(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(id="talks", sequence=3)
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
    with pytest.raises(Conflict, match="changed by someone else"):
        async with store.write() as tx:
            await tx.update_meeting(meeting.replace(sequence=5), expected_sequence=4, now=now)
    async with store.read() as tx:
        assert (await tx.meeting("talks")) == meeting


async def test_history_comes_back_in_order_in_the_asked_zone(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    meeting = meeting_factory(id="talks")
    entries = [
        HistoryEntry(
            meeting_id="talks",
            sequence=sequence,
            at=now + timedelta(minutes=sequence),
            kind=EventKind.RESCHEDULED,
            from_status=MeetingStatus.CLEARED,
            to_status=MeetingStatus.RESCHEDULED,
            reason=f"move {sequence}",
            previous_starts_at=meeting.starts_at,
            starts_at=meeting.starts_at + timedelta(hours=sequence),
            event_id=f"e{sequence}",
            source=Source.CLI,
            forced=sequence == 2,
            cleared=("health clearance",) if sequence == 1 else (),
            variants={"cleared": {"participants": ("health clearance", "rest")}}
            if sequence == 2
            else {},
        )
        for sequence in (2, 0, 1)
    ]
    async with store.write() as tx:
        await tx.insert_meeting(meeting, now=now)
        for entry in entries:
            await tx.append_history(entry)
    async with store.read() as tx:
        history = await tx.history("talks", zone="America/New_York")
    assert [e.sequence for e in history] == [0, 1, 2]
    assert history == sorted(entries, key=lambda e: e.sequence)
    assert all(e.at.tzinfo == ZoneInfo("America/New_York") for e in history)


async def test_a_subscriber_round_trips_with_both_endpoints(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    subscriber = subscriber_factory(
        id="wire",
        name="Wire",
        email="desk@example.org",
        webhook=WebhookEndpoint(url="https://hooks.example.org/n", secrets=(SECRET,)),
        timezone="America/New_York",
        locale="ru",
        meetings=("talks",),
        tags=("bilateral",),
        events=("meeting.postponed", "meeting.reminder"),
        reminders=(timedelta(hours=24), timedelta(minutes=15)),
        quiet_hours=QuietHours.parse("22:00-07:00"),
    )
    async with store.write() as tx:
        assert await tx.save_subscriber(subscriber, now=now)
    async with store.write() as tx:
        assert not await tx.save_subscriber(subscriber, now=now)  # nothing changed
    async with store.read() as tx:
        record = await tx.subscriber_record("wire")
    assert record is not None
    assert record.subscriber == subscriber


async def test_bulk_added_subscribers_read_back_as_saved_ones(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    """`add_subscribers` (imports, benchmarks) writes what `save_subscriber` would: each
    reads back equal, endpoints and all; an id already present fails the whole call."""
    many = [
        subscriber_factory(
            id=f"bulk-{n}",
            email=f"r{n}@example.org" if n % 2 else None,
            webhook=WebhookEndpoint(url=f"https://h.example.org/{n}", secrets=(SECRET,))
            if n % 3
            else None,
            meetings=("talks",),
            reminders=(timedelta(minutes=15),),
        )
        for n in range(1, 40)
    ]
    async with store.write() as tx:
        assert await tx.add_subscribers(many, now=now) == len(many)
    async with store.read() as tx:
        for subscriber in many:
            record = await tx.subscriber_record(subscriber.id)
            assert record is not None
            assert record.subscriber == subscriber
    with pytest.raises(Conflict):
        async with store.write() as tx:
            await tx.add_subscribers([subscriber_factory(id="new"), many[0]], now=now)
    async with store.read() as tx:
        assert await tx.subscriber_record("new") is None  # nothing of the failed call


async def test_changing_endpoints_adds_and_removes_them(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    first = subscriber_factory(id="s", email="a@example.org")
    async with store.write() as tx:
        await tx.save_subscriber(first, now=now)
    second = subscriber_factory(
        id="s", email=None, webhook=WebhookEndpoint(url="https://h.example.org", secrets=(SECRET,))
    )
    async with store.write() as tx:
        assert await tx.save_subscriber(second, now=now)
    async with store.read() as tx:
        assert (await tx.subscriber_record("s")).subscriber == second  # type: ignore[union-attr]


async def test_a_retired_subscriber_is_inactive_and_listed_only_on_request(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    async with store.write() as tx:
        await tx.save_subscriber(subscriber_factory(id="gone"), now=now)
        await tx.save_subscriber(subscriber_factory(id="kept"), now=now)
        await tx.retire_subscriber("gone", now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers()] == ["kept"]
        everyone = await tx.subscriber_records(include_retired=True)
        gone = next(r for r in everyone if r.subscriber.id == "gone")
        assert gone.retired_at == now
        assert not gone.subscriber.active


async def test_a_failed_transaction_leaves_nothing_behind(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    class Boom(Exception):
        pass

    async def insert_then_fail() -> None:
        async with store.write() as tx:
            await tx.insert_meeting(meeting_factory(id="talks"), now=now)
            raise Boom

    with pytest.raises(Boom):
        await insert_then_fail()
    async with store.read() as tx:
        assert await tx.meeting_record("talks") is None


async def test_counts(
    store: Store,
    meeting_factory: Callable[..., Meeting],
    subscriber_factory: Callable[..., Subscriber],
    now: datetime,
) -> None:
    async with store.write() as tx:
        await tx.insert_meeting(meeting_factory(), now=now)
        await tx.insert_meeting(meeting_factory(), now=now)
        await tx.save_subscriber(subscriber_factory(), now=now)
    async with store.read() as tx:
        assert await tx.counts() == Counts(meetings=2, subscribers=1, pending_reminders=0)


async def test_concurrent_writers_queue_instead_of_failing(
    store: Store, meeting_factory: Callable[..., Meeting], now: datetime
) -> None:
    async def insert(index: int) -> None:
        async with store.write() as tx:
            await tx.insert_meeting(meeting_factory(id=f"m{index}"), now=now)
            await asyncio.sleep(0.01)  # hold the write transaction open a little

    await asyncio.gather(*(insert(i) for i in range(8)))
    async with store.read() as tx:
        assert len(await tx.meeting_records()) == 8


def test_sqlite_stores_instants_in_utc() -> None:
    column = UTCDateTime()
    dialect = sqlite.dialect()
    moscow = datetime(2026, 3, 2, 19, 0, tzinfo=ZoneInfo("Europe/Moscow"))
    stored = column.process_bind_param(moscow, dialect)
    assert stored == datetime(2026, 3, 2, 16, 0)  # noqa: DTZ001 -- SQLite keeps naive UTC
    assert column.process_result_value(stored, dialect) == moscow
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 3, 2, 19, 0), dialect)  # noqa: DTZ001
    assert column.process_result_value(None, dialect) is None


async def test_a_meetings_readers_are_read_without_the_others(
    store: Store, subscriber_factory: Callable[..., Subscriber], now: datetime
) -> None:
    everyone = subscriber_factory(id="everyone")
    named = subscriber_factory(id="named", meetings=("talks_1", "summit"))
    other = subscriber_factory(id="other", meetings=("talksx1",))  # "_" is no wildcard
    async with store.write() as tx:
        for subscriber in (everyone, named, other):
            await tx.save_subscriber(subscriber, now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers(meeting_id="talks_1")] == ["everyone", "named"]
        assert [s.id for s in await tx.subscribers(meeting_id="summit")] == ["everyone", "named"]
        assert [s.id for s in await tx.subscribers(meeting_id="talks")] == ["everyone"]
        assert len(await tx.subscribers()) == 3
    async with store.write() as tx:  # following every meeting again
        await tx.save_subscriber(subscriber_factory(id="other"), now=now)
    async with store.read() as tx:
        assert [s.id for s in await tx.subscribers(meeting_id="talks")] == ["everyone", "other"]
