"""Every query notifier runs, on one `Transaction` type, for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from notifier.domain.errors import Conflict, NotLeader
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
from notifier.domain.outbox import (
    REPLAYABLE,
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Replay,
)
from notifier.domain.reminders import Reminder, ReminderState
from notifier.store import migrate
from notifier.store.engine import READ_ONLY, create_engine, redact
from notifier.store.tables import (
    UTCDateTime,
    deliveries,
    delivery_attempts,
    leases,
    meeting_history,
    meetings,
    meta,
    notices,
    processed_events,
    reminders,
    source_items,
    sources,
    subscriber_endpoints,
    subscribers,
    suppressions,
)


@dataclass(frozen=True, kw_only=True)
class MeetingRecord:
    """A stored meeting with the bookkeeping the domain does not need."""

    meeting: Meeting
    file_state: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class StoredReminder:
    """A reminder as the store keeps it."""

    id: int
    meeting_id: str
    subscriber_id: str
    offset: timedelta
    due_at: datetime
    sequence: int
    state: ReminderState
    fired_at: datetime | None
    late: bool


REMINDERS_VERSION = "reminders_version"

#: What a replay sets: due again, with a fresh set of attempts (the old ones stay in
#: delivery_attempts to read).
_REPLAYED = {"status": DeliveryStatus.PENDING.value, "last_error": None, "attempts": 0}

log = logging.getLogger(__name__)

#: The PostgreSQL channel on which new deliveries are announced to every replica.
OUTBOX_CHANNEL = "notifier_outbox"


@dataclass(frozen=True, kw_only=True)
class Lease:
    """One reign over a lease: its holder and term (the fencing token), until `expires_at`."""

    name: str
    holder: str
    term: int
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class SubscriberRecord:
    """A stored subscriber with its bookkeeping."""

    subscriber: Subscriber
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class Store:
    """The database: open it, migrate it, and run transactions on it."""

    def __init__(self, engine: AsyncEngine, *, write_lock: asyncio.Lock | None = None) -> None:
        self.engine = engine
        # SQLite runs one writer at a time, and a writer that finds the lock taken sleeps
        # in steps of up to 100 ms before it looks again. Writers of this process queue
        # here instead, and each starts the moment the one before it commits.
        self._write_lock = write_lock or asyncio.Lock()

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> Store:
        """Connect to `url`; with `upgrade`, first bring the schema to the latest revision."""
        store = cls(create_engine(url))
        if upgrade:
            try:
                await migrate.upgrade(store.engine)
            except BaseException:
                await store.close()
                raise
        return store

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return redact(self.engine.url)

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A read-write transaction, committed on normal exit and rolled back on error."""
        if self.backend != "sqlite":
            async with self.engine.begin() as connection:
                yield Transaction(connection)
            return
        async with self._write_lock, self.engine.begin() as connection:
            yield Transaction(connection)

    async def listen_outbox(
        self, on_notify: Callable[[], None], stop: asyncio.Event, *, check: float = 5.0
    ) -> None:
        """Call `on_notify` whenever any process queues deliveries, until `stop` is set.

        PostgreSQL only (returns at once on SQLite): one connection LISTENs on
        `OUTBOX_CHANNEL`; when it is lost (a database restart) it is opened again every
        `check` seconds. A worker still polls, so a lost notification only costs time.
        """
        if self.backend != "postgresql":
            return
        while not stop.is_set():
            try:
                async with self.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver = raw.driver_connection
                    assert driver is not None

                    def heard(*_: object) -> None:
                        on_notify()

                    await driver.add_listener(OUTBOX_CHANNEL, heard)
                    on_notify()  # anything queued while not listening
                    while not stop.is_set() and not driver.is_closed():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), check)
                    if not driver.is_closed():
                        await driver.remove_listener(OUTBOX_CHANNEL, heard)
            except Exception as exc:  # the database is away; the worker keeps polling
                log.warning("not listening for new deliveries: %s", exc)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """A transaction for reading; nothing written in it is committed."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            yield Transaction(connection)
            await connection.rollback()


class FencedStore(Store):
    """The same database, but every write transaction first checks a fencing term.

    Work only the scheduler leader may do (firing reminders, applying feed polls) runs
    through one of these: `lease()` says which term this replica holds (None when it holds
    none), and a transaction under a term that has since moved on raises `NotLeader` before
    it writes anything, and keeps a takeover waiting until it ends.
    """

    def __init__(self, store: Store, lease: Callable[[], Lease | None]) -> None:
        super().__init__(store.engine, write_lock=store._write_lock)
        self._lease = lease

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A read-write transaction under the current term."""
        async with super().write() as tx:
            await tx.check_fence(self._lease())
            yield tx


def _meeting(row: Row[Any]) -> Meeting:
    zone = ZoneInfo(row.timezone)
    return Meeting(
        id=row.id,
        title=row.title,
        description=row.description,
        location=row.location,
        participants=tuple(row.participants),
        timezone=row.timezone,
        starts_at=row.starts_at.astimezone(zone),
        ends_at=row.ends_at.astimezone(zone) if row.ends_at else None,
        status=MeetingStatus(row.status),
        reason=row.reason,
        conditions=tuple(row.conditions),
        tags=tuple(row.tags),
        sequence=row.sequence,
        source=Source(row.source),
        coalesce=timedelta(seconds=row.coalesce_seconds) if row.coalesce_seconds else None,
    )


def _meeting_values(meeting: Meeting) -> dict[str, Any]:
    return {
        "title": meeting.title,
        "description": meeting.description,
        "location": meeting.location,
        "participants": list(meeting.participants),
        "timezone": meeting.timezone,
        "starts_at": meeting.starts_at,
        "ends_at": meeting.ends_at,
        "status": meeting.status.value,
        "reason": meeting.reason,
        "conditions": list(meeting.conditions),
        "tags": list(meeting.tags),
        "sequence": meeting.sequence,
        "source": meeting.source.value,
        "coalesce_seconds": int(meeting.coalesce.total_seconds()) if meeting.coalesce else None,
    }


def _history(row: Row[Any], zone: ZoneInfo) -> HistoryEntry:
    return HistoryEntry(
        meeting_id=row.meeting_id,
        sequence=row.sequence,
        at=row.at.astimezone(zone),
        kind=EventKind(row.kind),
        from_status=MeetingStatus(row.from_status) if row.from_status else None,
        to_status=MeetingStatus(row.to_status),
        reason=row.reason,
        previous_starts_at=row.previous_starts_at.astimezone(zone)
        if row.previous_starts_at
        else None,
        starts_at=row.starts_at.astimezone(zone) if row.starts_at else None,
        event_id=row.event_id,
        source=Source(row.source),
        forced=bool(row.forced),
    )


def _quiet(text: str | None) -> QuietHours | None:
    return QuietHours.parse(text) if text else None


def _reminder_row(reminder: Reminder) -> dict[str, Any]:
    return {
        "meeting_id": reminder.meeting_id,
        "subscriber_id": reminder.subscriber_id,
        "offset_seconds": int(reminder.offset.total_seconds()),
        "due_at": reminder.due_at,
        "sequence": reminder.sequence,
        "state": _PENDING,
    }


_PENDING = ReminderState.PENDING.value
_WITHDRAWN = ReminderState.WITHDRAWN.value


def _item_id(url: str, key: str) -> str:
    return hashlib.sha256(f"{url}\x1f{key}".encode()).hexdigest()


class Transaction:
    """Queries inside one database transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        #: The dialect, decided once: PostgreSQL or SQLite (their INSERT ... ON CONFLICT).
        self.postgres = connection.dialect.name == "postgresql"
        self.dialect: Any = postgresql if self.postgres else sqlite

    # -- meetings ---------------------------------------------------------------------------

    async def meeting_record(
        self, meeting_id: str, *, for_update: bool = False
    ) -> MeetingRecord | None:
        """The stored meeting `meeting_id`, retired or not; `for_update` locks its row."""
        query = select(meetings).where(meetings.c.id == meeting_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        return MeetingRecord(
            meeting=_meeting(row),
            file_state=row.file_state,
            created_at=row.created_at,
            updated_at=row.updated_at,
            retired_at=row.retired_at,
        )

    async def meeting_records_by_id(self, ids: Sequence[str]) -> dict[str, MeetingRecord]:
        """The stored meetings among `ids` (retired or not), by id, in one query."""
        found: dict[str, MeetingRecord] = {}
        for start in range(0, len(ids), 500):
            query = select(meetings).where(meetings.c.id.in_(list(ids[start : start + 500])))
            for row in (await self.connection.execute(query)).all():
                found[row.id] = MeetingRecord(
                    meeting=_meeting(row),
                    file_state=row.file_state,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    retired_at=row.retired_at,
                )
        return found

    async def meeting(self, meeting_id: str, *, for_update: bool = False) -> Meeting | None:
        """The meeting `meeting_id` unless it is unknown or retired."""
        record = await self.meeting_record(meeting_id, for_update=for_update)
        return record.meeting if record and record.retired_at is None else None

    async def meeting_records(self, *, include_retired: bool = False) -> list[MeetingRecord]:
        """Every meeting, soonest first."""
        query = select(meetings).order_by(meetings.c.starts_at, meetings.c.id)
        if not include_retired:
            query = query.where(meetings.c.retired_at.is_(None))
        rows = (await self.connection.execute(query)).all()
        return [
            MeetingRecord(
                meeting=_meeting(row),
                file_state=row.file_state,
                created_at=row.created_at,
                updated_at=row.updated_at,
                retired_at=row.retired_at,
            )
            for row in rows
        ]

    async def insert_meeting(
        self, meeting: Meeting, *, now: datetime, file_state: str | None = None
    ) -> None:
        """Store a new meeting; `Conflict` if the id is taken."""
        if await self.meeting_record(meeting.id) is not None:
            raise Conflict(f"meeting {meeting.id!r} already exists")
        try:
            await self.connection.execute(
                insert(meetings).values(
                    id=meeting.id,
                    **_meeting_values(meeting),
                    file_state=file_state,
                    created_at=now,
                    updated_at=now,
                )
            )
        except IntegrityError:  # a concurrent create won (PostgreSQL: unique violation)
            raise Conflict(f"meeting {meeting.id!r} already exists") from None

    async def insert_meetings(self, new: Sequence[Meeting], *, now: datetime) -> None:
        """Store many new meetings in one statement; the caller checked no id is taken (a
        clash raises `IntegrityError` and the transaction is void)."""
        if new:
            await self.connection.execute(
                insert(meetings),
                [
                    {
                        "id": m.id,
                        **_meeting_values(m),
                        "file_state": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for m in new
                ],
            )

    async def update_meeting(
        self,
        meeting: Meeting,
        *,
        expected_sequence: int,
        now: datetime,
        **extra: Any,
    ) -> None:
        """Write `meeting` over the stored one if that is still at `expected_sequence`.

        `extra` sets bookkeeping columns (``file_state``, ``retired_at``). Raises `Conflict`
        when another writer changed the meeting first.
        """
        result = await self.connection.execute(
            update(meetings)
            .where(meetings.c.id == meeting.id, meetings.c.sequence == expected_sequence)
            .values(**_meeting_values(meeting), updated_at=now, **extra)
        )
        if result.rowcount != 1:
            raise Conflict(
                f"meeting {meeting.id!r} was changed by someone else meanwhile; try again"
            )

    async def set_meeting_bookkeeping(self, meeting_id: str, **values: Any) -> None:
        """Set ``file_state`` / ``retired_at`` without touching the meeting itself."""
        await self.connection.execute(
            update(meetings).where(meetings.c.id == meeting_id).values(**values)
        )

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append `entry` to its meeting's history (never updated, never deleted)."""
        await self.append_histories([entry])

    async def append_histories(self, entries: Sequence[HistoryEntry]) -> None:
        """Append many entries in one statement."""
        if not entries:
            return
        await self.connection.execute(
            insert(meeting_history),
            [
                {
                    "meeting_id": entry.meeting_id,
                    "sequence": entry.sequence,
                    "at": entry.at,
                    "kind": entry.kind.value,
                    "from_status": entry.from_status.value if entry.from_status else None,
                    "to_status": entry.to_status.value,
                    "reason": entry.reason,
                    "previous_starts_at": entry.previous_starts_at,
                    "starts_at": entry.starts_at,
                    "event_id": entry.event_id,
                    "source": entry.source.value,
                    "forced": entry.forced,
                }
                for entry in entries
            ],
        )

    async def history(self, meeting_id: str, *, zone: str = "UTC") -> list[HistoryEntry]:
        """The meeting's history, oldest first, times shown in `zone`."""
        rows = (
            await self.connection.execute(
                select(meeting_history)
                .where(meeting_history.c.meeting_id == meeting_id)
                .order_by(meeting_history.c.sequence)
            )
        ).all()
        tz = ZoneInfo(zone)
        return [_history(row, tz) for row in rows]

    async def history_entry(
        self, meeting_id: str, sequence: int, *, zone: str = "UTC"
    ) -> HistoryEntry:
        """One history entry, which must exist."""
        row = (
            await self.connection.execute(
                select(meeting_history).where(
                    meeting_history.c.meeting_id == meeting_id,
                    meeting_history.c.sequence == sequence,
                )
            )
        ).one()
        return _history(row, ZoneInfo(zone))

    # -- processed events -------------------------------------------------------------------

    async def processed_event(self, event_id: str) -> tuple[Meeting, int] | None:
        """(meeting as the event left it, history sequence) of an applied event id, if any."""
        row = (
            await self.connection.execute(
                select(processed_events.c.result, processed_events.c.sequence).where(
                    processed_events.c.event_id == event_id
                )
            )
        ).first()
        return (Meeting.from_dict(row.result), row.sequence) if row else None

    async def processed_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of `event_ids` were applied already."""
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            query = select(processed_events.c.event_id).where(
                processed_events.c.event_id.in_(chunk)
            )
            found.update((await self.connection.execute(query)).scalars().all())
        return found

    async def record_events(
        self, applied: Sequence[tuple[str, Meeting, int]], *, now: datetime
    ) -> None:
        """`record_event` for many (event id, resulting meeting, sequence) in one statement."""
        if applied:
            await self.connection.execute(
                insert(processed_events),
                [
                    {
                        "event_id": event_id,
                        "meeting_id": result.id,
                        "sequence": sequence,
                        "at": now,
                        "result": result.to_dict(),
                    }
                    for event_id, result, sequence in applied
                ],
            )

    async def record_event(
        self, event_id: str, *, result: Meeting, sequence: int, now: datetime
    ) -> None:
        """Remember that `event_id` produced history entry `sequence`, leaving `result`.

        A concurrent duplicate raises `sqlalchemy.exc.IntegrityError` at insert or commit.
        """
        await self.connection.execute(
            insert(processed_events).values(
                event_id=event_id,
                meeting_id=result.id,
                sequence=sequence,
                at=now,
                result=result.to_dict(),
            )
        )

    # -- subscribers ------------------------------------------------------------------------

    async def subscriber_records(
        self,
        *,
        include_retired: bool = False,
        ids: Sequence[str] | None = None,
        meeting_id: str | None = None,
    ) -> list[SubscriberRecord]:
        """Subscribers by id, with their endpoints; with `meeting_id`, only those who may
        follow that meeting (every meeting, or a list naming it: tags are left to match)."""
        query = select(subscribers).order_by(subscribers.c.id)
        if not include_retired:
            query = query.where(subscribers.c.retired_at.is_(None))
        if ids is not None:
            query = query.where(subscribers.c.id.in_(list(ids)))
        if meeting_id is not None:
            query = query.where(
                or_(
                    subscribers.c.meeting_filter.is_(None),
                    subscribers.c.meeting_filter.contains(f",{meeting_id},", autoescape=True),
                )
            )
        rows = (await self.connection.execute(query)).all()
        if not rows:
            return []
        endpoint_rows = (
            await self.connection.execute(
                select(subscriber_endpoints).where(
                    subscriber_endpoints.c.subscriber_id.in_([r.id for r in rows])
                )
            )
        ).all()
        endpoints: dict[str, dict[str, Row[Any]]] = {}
        for endpoint in endpoint_rows:
            endpoints.setdefault(endpoint.subscriber_id, {})[endpoint.channel] = endpoint
        records = []
        for row in rows:
            own = endpoints.get(row.id, {})
            email = own.get("email")
            hook = own.get("webhook")
            subscriber = Subscriber(
                id=row.id,
                name=row.name,
                email=email.address if email is not None and email.disabled_at is None else None,
                webhook=WebhookEndpoint(url=hook.address, secrets=tuple(hook.secrets))
                if hook is not None and hook.disabled_at is None
                else None,
                timezone=row.timezone,
                locale=row.locale,
                meetings=tuple(row.meetings),
                tags=tuple(row.tags),
                events=tuple(row.events),
                reminders=tuple(timedelta(seconds=s) for s in row.reminders),
                quiet_hours=_quiet(row.quiet_hours),
                active=bool(row.active) and row.retired_at is None,
                source=Source(row.source),
            )
            records.append(
                SubscriberRecord(
                    subscriber=subscriber,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    retired_at=row.retired_at,
                )
            )
        return records

    async def subscriber_record(self, subscriber_id: str) -> SubscriberRecord | None:
        """The stored subscriber `subscriber_id`, retired or not."""
        found = await self.subscriber_records(include_retired=True, ids=[subscriber_id])
        return found[0] if found else None

    async def subscribers(self, *, meeting_id: str | None = None) -> list[Subscriber]:
        """Every subscriber that is not retired (who may follow `meeting_id`, if given)."""
        return [
            record.subscriber for record in await self.subscriber_records(meeting_id=meeting_id)
        ]

    async def save_subscriber(
        self, subscriber: Subscriber, *, now: datetime, create: bool = False
    ) -> bool:
        """Insert or replace `subscriber` and its endpoints; True when anything changed.

        Endpoints the subscriber no longer has are removed; one it keeps keeps its
        `disabled_at` (an unsubscribe survives a config reload). With `create`, an id that
        exists already (or is inserted meanwhile by another transaction) is a `Conflict`.
        """
        values = {
            "name": subscriber.name,
            "timezone": subscriber.timezone,
            "locale": subscriber.locale,
            "meetings": list(subscriber.meetings),
            "meeting_filter": ",".join(("", *subscriber.meetings, ""))
            if subscriber.meetings
            else None,
            "tags": list(subscriber.tags),
            "events": list(subscriber.events),
            "reminders": [int(r.total_seconds()) for r in subscriber.reminders],
            "quiet_hours": str(subscriber.quiet_hours) if subscriber.quiet_hours else None,
            "active": subscriber.active,
            "source": subscriber.source.value,
        }
        existing = (
            await self.connection.execute(
                select(subscribers).where(subscribers.c.id == subscriber.id)
            )
        ).first()
        changed = False
        if existing is not None and create:
            raise Conflict(f"subscriber {subscriber.id!r} already exists")
        if existing is None:
            try:
                await self.connection.execute(
                    insert(subscribers).values(
                        id=subscriber.id, **values, created_at=now, updated_at=now
                    )
                )
            except IntegrityError:  # a concurrent create won (PostgreSQL: unique violation)
                raise Conflict(f"subscriber {subscriber.id!r} already exists") from None
            changed = True
        elif any(getattr(existing, k) != v for k, v in values.items()) or existing.retired_at:
            await self.connection.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber.id)
                .values(**values, updated_at=now, retired_at=None)
            )
            changed = True

        wanted: dict[str, tuple[str, list[str]]] = {}
        if subscriber.email:
            wanted["email"] = (subscriber.email, [])
        if subscriber.webhook:
            wanted["webhook"] = (subscriber.webhook.url, list(subscriber.webhook.secrets))
        rows = (
            await self.connection.execute(
                select(subscriber_endpoints).where(
                    subscriber_endpoints.c.subscriber_id == subscriber.id
                )
            )
        ).all()
        have = {row.channel: row for row in rows}
        for channel, old in have.items():
            if channel not in wanted:
                await self.connection.execute(
                    subscriber_endpoints.delete().where(subscriber_endpoints.c.id == old.id)
                )
                changed = True
        for channel, (address, secrets) in wanted.items():
            row = have.get(channel)
            if row is None:
                await self.connection.execute(
                    insert(subscriber_endpoints).values(
                        subscriber_id=subscriber.id,
                        channel=channel,
                        address=address,
                        secrets=secrets,
                    )
                )
                changed = True
            elif row.address != address or list(row.secrets) != secrets:
                # A new address is a new endpoint: an old refusal does not carry over.
                moved = row.address != address
                await self.connection.execute(
                    update(subscriber_endpoints)
                    .where(subscriber_endpoints.c.id == row.id)
                    .values(
                        address=address,
                        secrets=secrets,
                        **({"disabled_at": None, "disabled_reason": None} if moved else {}),
                    )
                )
                changed = True
        return changed

    async def retire_subscriber(self, subscriber_id: str, *, now: datetime) -> None:
        """Mark a subscriber retired: it matches nothing, and its pending reminders go."""
        await self.connection.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(retired_at=now, updated_at=now)
        )
        withdrawn = await self.connection.execute(
            update(reminders)
            .where(
                reminders.c.subscriber_id == subscriber_id,
                reminders.c.state == _PENDING,
            )
            .values(state=_WITHDRAWN)
        )
        if withdrawn.rowcount:
            await self.touch_reminders()

    # -- counts -----------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """How many meetings, subscribers and pending reminders there are (not retired)."""

        async def count(query: Any) -> int:
            return int((await self.connection.execute(query)).scalar_one())

        return {
            "meetings": await count(
                select(func.count()).select_from(meetings).where(meetings.c.retired_at.is_(None))
            ),
            "subscribers": await count(
                select(func.count())
                .select_from(subscribers)
                .where(subscribers.c.retired_at.is_(None))
            ),
            "pending_reminders": await count(
                select(func.count()).select_from(reminders).where(reminders.c.state == _PENDING)
            ),
        }

    # -- outbox -----------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[Delivery], *, now: datetime) -> int:
        """Add deliveries to the outbox; one whose id is already there is left alone.

        Returns how many were new. Run it in the transaction that made the change, so a
        change and its notifications are committed together or not at all.
        """
        if not items:
            return 0
        dialect = self.dialect
        said: dict[str, dict[str, Any]] = {}
        for d in items:
            # A delivery read back from the store refers to a notice already there.
            if d.payload is not None:
                said.setdefault(d.notice_id, d.payload)
        if said:
            await self.connection.execute(
                dialect.insert(notices).on_conflict_do_nothing(index_elements=["id"]),
                [{"id": key, "payload": body, "created_at": now} for key, body in said.items()],
            )
        rows = [
            {
                "id": d.id,
                "meeting_id": d.meeting_id,
                "subscriber_id": d.subscriber_id,
                "channel": d.channel.value,
                "kind": d.kind.value,
                "sequence": d.sequence,
                "notice_id": d.notice_id,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at,
                "created_at": now,
            }
            for d in items
        ]
        statement = (
            dialect.insert(deliveries)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(deliveries.c.id)
        )
        # Batched into multi-row INSERTs by SQLAlchemy; RETURNING counts what was new.
        result = await self.connection.execute(statement, rows)
        added = len(result.all())
        if added:
            await self.notify_outbox()
        return added

    async def notify_outbox(self) -> None:
        """Tell every replica listening (`Store.listen_outbox`) that deliveries are due.

        On PostgreSQL a NOTIFY, delivered when this transaction commits and never if it
        rolls back; SQLite has one process, whose own worker is woken directly.
        """
        if self.postgres:
            await self.connection.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))

    async def claim(
        self, *, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Delivery]:
        """Claim up to `limit` due deliveries for `worker` until ``now + lease``.

        Due: pending or retrying with `next_attempt_at` reached, or sending under a lease
        that ran out (its worker died). On PostgreSQL rows other workers are claiming are
        skipped (``FOR UPDATE SKIP LOCKED``); SQLite holds the write lock throughout.
        """
        due = or_(
            and_(
                deliveries.c.status.in_(
                    [DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value]
                ),
                deliveries.c.next_attempt_at <= now,
            ),
            and_(
                deliveries.c.status == DeliveryStatus.SENDING.value,
                deliveries.c.claimed_until < self._clock(now),
            ),
        )
        chosen = (
            select(deliveries.c.id)
            .where(due)
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (
            await self.connection.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(chosen.scalar_subquery()))
                .values(
                    status=DeliveryStatus.SENDING.value,
                    claimed_by=worker,
                    claimed_until=self._clock(now) + lease,
                )
                .returning(*deliveries.c)
            )
        ).all()
        return [_delivery(row) for row in rows]

    def _clock(self, now: datetime) -> Any:
        """The instant claims are judged by: PostgreSQL's own clock, so that replicas whose
        clocks differ agree on when a claim has run out; on SQLite (one process) `now`."""
        if self.postgres:
            return func.now()
        return now

    async def extend_claims(
        self, ids: Sequence[str], *, worker: str, lease: timedelta, now: datetime
    ) -> int:
        """Keep `worker`'s claims on `ids` (still sending) for another `lease`; how many."""
        if not ids:
            return 0
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.claimed_by == worker,
                deliveries.c.status == DeliveryStatus.SENDING.value,
            )
            .values(claimed_until=self._clock(now) + lease)
        )
        return int(result.rowcount or 0)

    async def record_attempts(self, attempts: Sequence[Attempt], *, worker: str) -> int:
        """Record attempts and move their deliveries on; returns how many were still ours.

        A delivery whose lease another worker has taken meanwhile keeps that worker's
        state; its attempt is still recorded.
        """
        if not attempts:
            return 0
        await self.connection.execute(
            insert(delivery_attempts),
            [
                {
                    "delivery_id": a.delivery_id,
                    "at": a.at,
                    "duration_ms": a.duration_ms,
                    "outcome": a.outcome.value,
                    "code": a.code,
                    "error": a.error,
                }
                for a in attempts
            ],
        )
        ids = [a.delivery_id for a in attempts]
        owned = set(
            (
                await self.connection.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.id.in_(ids),
                        deliveries.c.claimed_by == worker,
                        deliveries.c.status == DeliveryStatus.SENDING.value,
                    )
                    .with_for_update()
                )
            ).scalars()
        )
        mine = [a for a in attempts if a.delivery_id in owned]
        if mine:
            # One statement, many parameter sets: compiled once, sent as a batch.
            await self.connection.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    attempts=deliveries.c.attempts + bindparam("b_count", type_=Integer),
                    claimed_by=None,
                    claimed_until=None,
                    last_error=bindparam("b_error"),
                    sent_at=func.coalesce(
                        bindparam("b_sent_at", type_=UTCDateTime), deliveries.c.sent_at
                    ),
                    next_attempt_at=func.coalesce(
                        bindparam("b_next", type_=UTCDateTime), deliveries.c.next_attempt_at
                    ),
                ),
                [
                    {
                        "b_id": a.delivery_id,
                        "b_status": a.status.value,
                        "b_count": 1 if a.counted else 0,
                        "b_error": a.error,
                        "b_sent_at": a.at if a.status is DeliveryStatus.SENT else None,
                        "b_next": a.next_attempt_at,
                    }
                    for a in mine
                ],
            )
        return len(mine)

    async def release(self, ids: Sequence[str], *, worker: str) -> None:
        """Give claimed deliveries back untried (on shutdown), due at once."""
        if ids:
            await self.connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.claimed_by == worker,
                    deliveries.c.status == DeliveryStatus.SENDING.value,
                )
                .values(
                    status=case_pending(deliveries.c.attempts),
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    async def prune(self, *, before: datetime, limit: int = 500) -> dict[str, int]:
        """Delete up to `limit` of each kind of record that has served its time.

        Sent and merged deliveries older than `before` (with their attempts), attempts
        older than `before`, processed event ids older than `before`, and notices older
        than `before` that no delivery refers to any more. History, meetings, subscribers,
        and deliveries still pending, retrying or dead are kept.
        """
        finished = [DeliveryStatus.SENT.value, DeliveryStatus.MERGED.value]
        old_deliveries = list(
            (
                await self.connection.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.status.in_(finished),
                        func.coalesce(deliveries.c.sent_at, deliveries.c.created_at) < before,
                    )
                    .limit(limit)
                )
            ).scalars()
        )
        attempts_gone = 0
        if old_deliveries:
            gone = await self.connection.execute(
                delete(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(old_deliveries))
            )
            attempts_gone += max(gone.rowcount or 0, 0)
            await self.connection.execute(
                delete(deliveries).where(deliveries.c.id.in_(old_deliveries))
            )
        attempts_gone += await self._delete_oldest(
            delivery_attempts.c.id, delivery_attempts.c.at < before, limit=limit
        )
        old_events = await self._delete_oldest(
            processed_events.c.event_id, processed_events.c.at < before, limit=limit
        )
        unused = ~exists(select(deliveries.c.id).where(deliveries.c.notice_id == notices.c.id))
        old_notices = await self._delete_oldest(
            notices.c.id, and_(notices.c.created_at < before, unused), limit=limit
        )
        return {
            "deliveries": len(old_deliveries),
            "attempts": attempts_gone,
            "events": old_events,
            "notices": old_notices,
        }

    # -- failing endpoints ----------------------------------------------------------------

    async def endpoint_health(
        self,
        outcomes: Sequence[tuple[str, bool, datetime]],
        *,
        disable_after: timedelta | None,
    ) -> list[tuple[str, datetime]]:
        """Track webhook endpoints' runs of failures; disable those failing too long.

        `outcomes` are (subscriber id, succeeded, when) for webhook attempts. A success
        ends a run; a failure starts one if none is running. Endpoints whose run began
        `disable_after` or more before their latest failure are disabled; returns those
        (subscriber id, failing since).
        """
        ok = sorted({sid for sid, good, _ in outcomes if good})
        if ok:
            await self.connection.execute(
                update(subscriber_endpoints)
                .where(
                    subscriber_endpoints.c.subscriber_id.in_(ok),
                    subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                    subscriber_endpoints.c.failing_since.is_not(None),
                )
                .values(failing_since=None)
            )
        latest: dict[str, datetime] = {}
        for sid, good, at in outcomes:
            if not good and sid not in ok:
                latest[sid] = max(at, latest.get(sid, at))
        if not latest:
            return []
        await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == bindparam("b_sid"),
                subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                subscriber_endpoints.c.failing_since.is_(None),
            )
            .values(failing_since=bindparam("b_at", type_=UTCDateTime)),
            [{"b_sid": sid, "b_at": at} for sid, at in latest.items()],
        )
        if disable_after is None or disable_after <= timedelta(0):
            return []
        rows = (
            await self.connection.execute(
                select(
                    subscriber_endpoints.c.subscriber_id, subscriber_endpoints.c.failing_since
                ).where(
                    subscriber_endpoints.c.subscriber_id.in_(sorted(latest)),
                    subscriber_endpoints.c.channel == Channel.WEBHOOK.value,
                    subscriber_endpoints.c.disabled_at.is_(None),
                    subscriber_endpoints.c.failing_since.is_not(None),
                )
            )
        ).all()
        disabled = [
            (row.subscriber_id, row.failing_since)
            for row in rows
            if latest[row.subscriber_id] - row.failing_since >= disable_after
        ]
        for sid, since in disabled:
            await self.disable_endpoint(
                sid,
                Channel.WEBHOOK,
                reason=f"failed every attempt since {since.isoformat()}",
                now=latest[sid],
            )
        return disabled

    async def _delete_oldest(self, key: Any, condition: ColumnElement[bool], *, limit: int) -> int:
        """Delete up to `limit` rows of `key`'s table that meet `condition`; how many."""
        keys = list(
            (await self.connection.execute(select(key).where(condition).limit(limit))).scalars()
        )
        if keys:
            await self.connection.execute(delete(key.table).where(key.in_(keys)))
        return len(keys)

    async def enable_endpoint(self, subscriber_id: str, channel: Channel) -> bool:
        """Use a disabled endpoint again (its run of failures forgotten); False if none was
        disabled."""
        result = await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == subscriber_id,
                subscriber_endpoints.c.channel == channel.value,
                subscriber_endpoints.c.disabled_at.is_not(None),
            )
            .values(disabled_at=None, disabled_reason=None, failing_since=None)
        )
        return bool(result.rowcount)

    # -- suppression list ---------------------------------------------------------------

    async def suppress(self, address: str, *, reason: str, now: datetime) -> None:
        """Put `address` on the suppression list (a hard bounce); a repeat keeps the first."""
        dialect = self.dialect
        await self.connection.execute(
            dialect.insert(suppressions)
            .values(address=address.strip().lower(), reason=reason[:500], created_at=now)
            .on_conflict_do_nothing()
        )

    async def suppressed(self, addresses: Sequence[str]) -> set[str]:
        """Which of `addresses` (compared in lower case) are suppressed."""
        wanted = sorted({a.strip().lower() for a in addresses})
        if not wanted:
            return set()
        return set(
            (
                await self.connection.execute(
                    select(suppressions.c.address).where(suppressions.c.address.in_(wanted))
                )
            ).scalars()
        )

    async def suppressions(self) -> list[dict[str, Any]]:
        """The suppression list, newest first."""
        rows = await self.connection.execute(
            select(suppressions).order_by(suppressions.c.created_at.desc())
        )
        return [
            {"address": r.address, "reason": r.reason, "since": r.created_at.isoformat()}
            for r in rows
        ]

    async def unsuppress(self, address: str) -> bool:
        """Take `address` off the suppression list; False if it was not on it."""
        result = await self.connection.execute(
            delete(suppressions).where(suppressions.c.address == address.strip().lower())
        )
        return bool(result.rowcount)

    async def release_claims(self, worker: str) -> int:
        """Hand back what `worker` still holds (a stop that could not finish it): due now,
        its attempt count unchanged, for the next worker rather than after the lease."""
        result = await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.status == DeliveryStatus.SENDING.value,
                deliveries.c.claimed_by == worker,
            )
            .values(status=case_pending(deliveries.c.attempts), claimed_by=None, claimed_until=None)
        )
        released = int(result.rowcount or 0)
        if released:
            await self.notify_outbox()
        return released

    async def recover_claims(self) -> int:
        """Return every claimed delivery to the queue (SQLite start-up: one process only)."""
        result = await self.connection.execute(
            update(deliveries)
            .where(deliveries.c.status == DeliveryStatus.SENDING.value)
            .values(status=case_pending(deliveries.c.attempts), claimed_by=None, claimed_until=None)
        )
        return max(result.rowcount, 0)

    async def waiting_changes(
        self, meeting_id: str
    ) -> dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]]:
        """Change deliveries of a meeting not yet attempted, with their payloads, by endpoint."""
        rows = (
            await self.connection.execute(
                select(deliveries, notices.c.payload.label("notice_payload"))
                .join(notices, notices.c.id == deliveries.c.notice_id)
                .where(
                    deliveries.c.meeting_id == meeting_id,
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                    deliveries.c.attempts == 0,
                    deliveries.c.kind != EventKind.REMINDER.value,
                )
            )
        ).all()
        waiting: dict[tuple[str, Channel], list[tuple[Delivery, dict[str, Any]]]] = {}
        for row in rows:
            delivery = _delivery(row)
            waiting.setdefault((delivery.subscriber_id, delivery.channel), []).append(
                (delivery, row.notice_payload)
            )
        return waiting

    async def mark_merged(self, ids: Sequence[str]) -> None:
        """Mark deliveries folded into later ones (they will not be sent)."""
        if ids:
            await self.connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(ids)),
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                )
                .values(status=DeliveryStatus.MERGED.value)
            )

    async def notices(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads of the notices `ids`."""
        rows = (
            await self.connection.execute(
                select(notices.c.id, notices.c.payload).where(notices.c.id.in_(list(ids)))
            )
        ).all()
        return {row.id: row.payload for row in rows}

    async def contacts(self, ids: Sequence[str]) -> dict[str, Contact]:
        """How to reach each of the subscribers `ids` now: endpoints not disabled only."""
        email = subscriber_endpoints.alias("email")
        hook = subscriber_endpoints.alias("hook")
        query = (
            select(
                subscribers.c.id,
                subscribers.c.name,
                subscribers.c.locale,
                subscribers.c.timezone,
                subscribers.c.active,
                subscribers.c.retired_at,
                email.c.address.label("email"),
                hook.c.address.label("url"),
                hook.c.secrets.label("secrets"),
            )
            .select_from(subscribers)
            .outerjoin(
                email,
                and_(
                    email.c.subscriber_id == subscribers.c.id,
                    email.c.channel == Channel.EMAIL.value,
                    email.c.disabled_at.is_(None),
                ),
            )
            .outerjoin(
                hook,
                and_(
                    hook.c.subscriber_id == subscribers.c.id,
                    hook.c.channel == Channel.WEBHOOK.value,
                    hook.c.disabled_at.is_(None),
                ),
            )
            .where(subscribers.c.id.in_(list(ids)))
        )
        return {
            row.id: Contact(
                id=row.id,
                name=row.name,
                locale=row.locale,
                timezone=row.timezone,
                active=bool(row.active) and row.retired_at is None,
                email=row.email,
                webhook=WebhookEndpoint(url=row.url, secrets=tuple(row.secrets))
                if row.url
                else None,
            )
            for row in (await self.connection.execute(query)).all()
        }

    async def endpoint_address(self, subscriber_id: str, channel: Channel) -> str | None:
        """The address (email or URL) of a subscriber's endpoint, disabled or not."""
        return (
            await self.connection.execute(
                select(subscriber_endpoints.c.address).where(
                    subscriber_endpoints.c.subscriber_id == subscriber_id,
                    subscriber_endpoints.c.channel == channel.value,
                )
            )
        ).scalar_one_or_none()

    async def disable_endpoint(
        self, subscriber_id: str, channel: Channel, *, reason: str, now: datetime
    ) -> None:
        """Stop using a subscriber's endpoint (410 Gone, unsubscribed)."""
        await self.connection.execute(
            update(subscriber_endpoints)
            .where(
                subscriber_endpoints.c.subscriber_id == subscriber_id,
                subscriber_endpoints.c.channel == channel.value,
                subscriber_endpoints.c.disabled_at.is_(None),
            )
            .values(disabled_at=now, disabled_reason=reason)
        )

    async def deliveries(
        self, *, status: DeliveryStatus | DeliveryFilter | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally only those `status` selects."""
        query = (
            select(deliveries)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
            .limit(limit)
        )
        if status is not None:
            wanted = status.statuses() if isinstance(status, DeliveryFilter) else [status]
            query = query.where(deliveries.c.status.in_([s.value for s in wanted]))
        return [_delivery(row) for row in (await self.connection.execute(query)).all()]

    async def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        row = (
            await self.connection.execute(select(deliveries).where(deliveries.c.id == delivery_id))
        ).first()
        return _delivery(row) if row else None

    async def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """Every attempt at a delivery, oldest first."""
        rows = (
            await self.connection.execute(
                select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id == delivery_id)
                .order_by(delivery_attempts.c.id)
            )
        ).all()
        return [
            {
                "at": row.at.isoformat(),
                "duration_ms": row.duration_ms,
                "outcome": row.outcome,
                "code": row.code,
                "error": row.error,
            }
            for row in rows
        ]

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        """Make a delivery that is not sent or being sent due again now (replay)."""
        await self.connection.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status.in_([s.value for s in REPLAYABLE]),
            )
            .values(**_REPLAYED, next_attempt_at=now)
        )
        await self.notify_outbox()
        return await self.delivery(delivery_id)

    async def replay(self, selection: Replay, *, now: datetime, dry_run: bool = False) -> list[str]:
        """Make every delivery `selection` picks due now with fresh attempts; their ids.

        With `dry_run`, only says which it would pick.
        """
        where: list[ColumnElement[bool]] = [
            deliveries.c.status.in_([s.value for s in selection.statuses()])
        ]
        if selection.since is not None:
            where.append(deliveries.c.created_at >= selection.since)
        if selection.subscriber_id is not None:
            where.append(deliveries.c.subscriber_id == selection.subscriber_id)
        ids = list(
            (
                await self.connection.execute(
                    select(deliveries.c.id).where(*where).order_by(deliveries.c.created_at)
                )
            ).scalars()
        )
        if ids and not dry_run:
            for start in range(0, len(ids), 500):
                await self.connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(ids[start : start + 500]), *where)
                    .values(**_REPLAYED, next_attempt_at=now)
                )
            await self.notify_outbox()
        return ids

    async def queue_stats(self, *, now: datetime) -> dict[str, float]:
        """Deliveries per status, and the age in seconds of the oldest one not yet sent."""
        rows = (
            await self.connection.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
        ).all()
        stats: dict[str, float] = {s.value: 0 for s in DeliveryStatus}
        stats.update({row[0]: row[1] for row in rows})
        oldest = (
            await self.connection.execute(
                select(func.min(deliveries.c.created_at)).where(
                    deliveries.c.status.in_(
                        [
                            DeliveryStatus.PENDING.value,
                            DeliveryStatus.RETRYING.value,
                            DeliveryStatus.SENDING.value,
                        ]
                    )
                )
            )
        ).scalar_one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        stats["oldest_pending_seconds"] = (now - oldest).total_seconds() if oldest else 0.0
        return stats

    # -- reminders --------------------------------------------------------------------------

    async def replace_reminders(
        self, meeting: Meeting, planned: Sequence[Reminder], *, on_schedule: bool
    ) -> None:
        """Make `meeting`'s pending reminders the `planned` ones.

        Pending reminders planned for an older sequence, or for a meeting no longer on
        schedule, are withdrawn; a planned one already fired stays fired (never twice).
        Pending ones of the current sequence that are past due are left for the scheduler
        to fire late or record as missed.
        """
        stale = [reminders.c.sequence != meeting.sequence]
        if not on_schedule:
            stale.append(reminders.c.sequence == meeting.sequence)
        withdrawn = await self.connection.execute(
            update(reminders)
            .where(
                reminders.c.meeting_id == meeting.id,
                reminders.c.state == _PENDING,
                or_(*stale),
            )
            .values(state=_WITHDRAWN)
        )
        if planned:
            dialect = self.dialect
            statement = dialect.insert(reminders)
            statement = statement.on_conflict_do_update(
                index_elements=["meeting_id", "subscriber_id", "offset_seconds", "sequence"],
                set_={"state": _PENDING, "due_at": statement.excluded.due_at},
                where=reminders.c.state == _WITHDRAWN,
            ).returning(reminders.c.id)
            added = await self.connection.execute(
                statement,
                [_reminder_row(r) for r in planned],
            )
            changed = bool(added.all())
        else:
            changed = False
        # Only a change to the pending set moves the version every scheduler watches: it is
        # one row, and writing it in every status change would queue them all behind it.
        if changed or withdrawn.rowcount:
            await self.touch_reminders()

    async def add_reminders(self, planned: Sequence[Reminder]) -> None:
        """Plan reminders for meetings that had none (new meetings), in one statement."""
        if not planned:
            return
        await self.connection.execute(
            insert(reminders),
            [_reminder_row(r) for r in planned],
        )
        await self.touch_reminders()

    async def touch_reminders(self) -> None:
        """Tell schedulers (in any process) that pending reminders changed."""
        await self.set_meta(REMINDERS_VERSION, uuid.uuid4().hex)

    async def reminders_version(self) -> str:
        """Changes whenever pending reminders change; cheap to poll, reads only."""
        row = (
            await self.connection.execute(
                select(meta.c.value).where(meta.c.key == REMINDERS_VERSION)
            )
        ).first()
        return str(row.value) if row else "0"

    async def pending_reminders(self) -> list[tuple[int, datetime]]:
        """(id, due instant) of every pending reminder, soonest first."""
        rows = (
            await self.connection.execute(
                select(reminders.c.id, reminders.c.due_at)
                .where(reminders.c.state == _PENDING)
                .order_by(reminders.c.due_at)
            )
        ).all()
        return [(row.id, row.due_at) for row in rows]

    async def reminder(
        self, reminder_id: int, *, for_update: bool = False
    ) -> StoredReminder | None:
        """One reminder, locked for the transaction with `for_update`."""
        found = await self.reminders_by_id([reminder_id], for_update=for_update)
        return found.get(reminder_id)

    async def reminders_by_id(
        self, ids: Sequence[int], *, for_update: bool = False
    ) -> dict[int, StoredReminder]:
        """Reminders by id, locked for the transaction with `for_update`."""
        query = select(reminders).where(reminders.c.id.in_(list(ids)))
        if for_update:
            query = query.with_for_update()
        return {
            row.id: StoredReminder(
                id=row.id,
                meeting_id=row.meeting_id,
                subscriber_id=row.subscriber_id,
                offset=timedelta(seconds=row.offset_seconds),
                due_at=row.due_at,
                sequence=row.sequence,
                state=ReminderState(row.state),
                fired_at=row.fired_at,
                late=bool(row.late),
            )
            for row in (await self.connection.execute(query)).all()
        }

    async def meeting_reminders(self, meeting_id: str) -> list[StoredReminder]:
        """Every reminder of a meeting, in due order."""
        ids = (
            await self.connection.execute(
                select(reminders.c.id).where(reminders.c.meeting_id == meeting_id)
            )
        ).scalars()
        found = await self.reminders_by_id(list(ids))
        return sorted(found.values(), key=lambda r: (r.due_at, r.id))

    async def finish_reminders(
        self, outcomes: Sequence[tuple[int, ReminderState, bool]], *, at: datetime
    ) -> None:
        """Record (id, state, late) for many pending reminders in one statement."""
        if not outcomes:
            return
        await self.connection.execute(
            update(reminders)
            .where(
                reminders.c.id == bindparam("b_id"),
                reminders.c.state == _PENDING,
            )
            .values(
                state=bindparam("b_state"),
                fired_at=bindparam("b_fired_at", type_=UTCDateTime),
                late=bindparam("b_late"),
            ),
            [
                {
                    "b_id": reminder_id,
                    "b_state": state.value,
                    "b_fired_at": at if state is ReminderState.FIRED else None,
                    "b_late": late,
                }
                for reminder_id, state, late in outcomes
            ],
        )

    # -- sources ----------------------------------------------------------------------------

    async def source_state(self, url: str) -> dict[str, Any]:
        """A watched source's health and last read (empty for one never read)."""
        row = (await self.connection.execute(select(sources).where(sources.c.url == url))).first()
        if row is None:
            return {"url": url, "failures": 0}
        return dict(row._mapping)

    async def save_source_state(self, url: str, kind: str, **values: Any) -> None:
        """Record a poll's outcome (or progress) for a watched source."""
        dialect = self.dialect
        statement = dialect.insert(sources).values(url=url, kind=kind, **values)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["url"],
                set_={c: statement.excluded[c] for c in ["kind", *values]},
            )
        )

    async def source_items(self, url: str) -> dict[str, dict[str, Any]]:
        """What each event of source `url` looked like when last read, by event key."""
        rows = await self.connection.execute(
            select(source_items.c.key, source_items.c.said).where(source_items.c.source_url == url)
        )
        return {row.key: row.said for row in rows}

    async def save_source_items(self, url: str, said: dict[str, dict[str, Any]]) -> None:
        """Remember what these events of source `url` said (insert or replace)."""
        if not said:
            return
        dialect = self.dialect
        statement = dialect.insert(source_items)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["id"], set_={"said": statement.excluded.said}
            ),
            [
                {"id": _item_id(url, key), "source_url": url, "key": key, "said": value}
                for key, value in said.items()
            ],
        )

    async def forget_source_items(self, url: str, keys: Sequence[str]) -> None:
        """Forget events source `url` no longer has."""
        for start in range(0, len(keys), 500):
            ids = [_item_id(url, key) for key in keys[start : start + 500]]
            await self.connection.execute(delete(source_items).where(source_items.c.id.in_(ids)))

    async def source_reports(self) -> list[dict[str, Any]]:
        """Every watched source's health and last read, without its per-event memory."""
        rows = (await self.connection.execute(select(sources).order_by(sources.c.url))).all()
        return [dict(row._mapping) for row in rows]

    async def source_states(self) -> list[dict[str, Any]]:
        """Every watched source's health."""
        rows = (await self.connection.execute(select(sources).order_by(sources.c.url))).all()
        return [dict(row._mapping) for row in rows]

    # -- meta -------------------------------------------------------------------------------

    async def set_meta(self, key: str, value: str) -> None:
        """Set the installation-wide value `key`."""
        dialect = self.dialect
        statement = dialect.insert(meta).values(key=key, value=value)
        await self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["key"], set_={"value": statement.excluded.value}
            )
        )

    async def meta_value(self, key: str, *, default: str) -> str:
        """The installation-wide value `key`, set to `default` the first time it is read."""
        row = (await self.connection.execute(select(meta.c.value).where(meta.c.key == key))).first()
        if row is not None:
            return str(row.value)
        dialect = self.dialect
        await self.connection.execute(
            dialect.insert(meta).values(key=key, value=default).on_conflict_do_nothing()
        )
        stored = (
            await self.connection.execute(select(meta.c.value).where(meta.c.key == key))
        ).scalar_one()
        return str(stored)

    async def serialize(self, name: str) -> None:
        """Wait until no other transaction holds `name`, then hold it until this one ends.

        On PostgreSQL a transaction-scoped advisory lock; SQLite already runs one writer at
        a time. Replicas that reconcile the same config file at once take turns, so the
        second finds the work done instead of failing on the first one's inserts.
        """
        if self.postgres:
            await self.connection.execute(
                select(func.pg_advisory_xact_lock(func.hashtext(f"notifier:{name}")))
            )

    # -- leases -----------------------------------------------------------------------------

    async def acquire_lease(
        self, name: str, holder: str, *, now: datetime, ttl: timedelta, force: bool = False
    ) -> Lease | None:
        """Take or renew the lease `name` for `holder` until `now + ttl`; None if it is held.

        The term stays the same while one holder renews and grows by one whenever the holder
        changes, so a term names one reign. The row is locked for the decision, so two
        contenders cannot both win. `force` takes it even from a live holder (a process that
        owns the database alone, as on SQLite, need not wait out its crashed predecessor).
        """
        row = await self._lease_row(name, for_update=True)
        if row is None:
            dialect = self.dialect
            await self.connection.execute(
                dialect.insert(leases)
                .values(name=name, holder="", term=0, acquired_at=now, expires_at=now)
                .on_conflict_do_nothing()
            )
            row = await self._lease_row(name, for_update=True)
            assert row is not None
        expires_at = now + ttl
        if row.holder == holder and row.term > 0:
            await self.connection.execute(
                update(leases).where(leases.c.name == name).values(expires_at=expires_at)
            )
            return Lease(name=name, holder=holder, term=row.term, expires_at=expires_at)
        if row.expires_at > now and not force:
            return None
        term = row.term + 1
        await self.connection.execute(
            update(leases)
            .where(leases.c.name == name)
            .values(holder=holder, term=term, acquired_at=now, expires_at=expires_at)
        )
        return Lease(name=name, holder=holder, term=term, expires_at=expires_at)

    async def release_lease(self, lease: Lease, *, now: datetime) -> bool:
        """Let the lease go at once (a graceful stop), if `lease` still holds it."""
        result = await self.connection.execute(
            update(leases)
            .where(
                leases.c.name == lease.name,
                leases.c.holder == lease.holder,
                leases.c.term == lease.term,
            )
            .values(expires_at=now)
        )
        return bool(result.rowcount)

    async def check_fence(self, lease: Lease | None) -> None:
        """Raise `NotLeader` unless `lease` is still the current term of its lease.

        The row is share-locked until this transaction ends, so a takeover waits for it:
        whatever this transaction writes is committed under the term it checked, or not
        at all.
        """
        if lease is None:
            raise NotLeader("this replica does not hold the scheduler lease")
        row = await self._lease_row(lease.name, for_update=True, read=True)
        if row is None or row.holder != lease.holder or row.term != lease.term:
            raise NotLeader(
                f"the {lease.name} lease moved on from term {lease.term}"
                + (f" to term {row.term} ({row.holder})" if row is not None else "")
            )

    async def lease(self, name: str) -> Lease | None:
        """The lease `name` as stored, if it was ever taken."""
        row = await self._lease_row(name)
        if row is None or row.term == 0:
            return None
        return Lease(name=name, holder=row.holder, term=row.term, expires_at=row.expires_at)

    async def _lease_row(
        self, name: str, *, for_update: bool = False, read: bool = False
    ) -> Row[Any] | None:
        query = select(leases).where(leases.c.name == name)
        if for_update:
            query = query.with_for_update(read=read)
        return (await self.connection.execute(query)).first()


def case_pending(attempts: Any) -> Any:
    """``pending`` for a delivery never tried, ``retrying`` for one tried before."""
    return case((attempts == 0, DeliveryStatus.PENDING.value), else_=DeliveryStatus.RETRYING.value)


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        meeting_id=row.meeting_id,
        subscriber_id=row.subscriber_id,
        channel=Channel(row.channel),
        kind=EventKind(row.kind),
        sequence=row.sequence,
        notice_id=row.notice_id,
        next_attempt_at=row.next_attempt_at,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
    )
