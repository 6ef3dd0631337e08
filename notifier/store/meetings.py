"""Meetings, their history and the event ids already applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from notifier.domain.audiences import thaw
from notifier.domain.errors import Conflict
from notifier.domain.languages import thaw_texts
from notifier.domain.models import (
    HistoryEntry,
    Meeting,
)
from notifier.store.base import QueriesBase
from notifier.store.records import MeetingRecord, Stamp, _history, _meeting_values, _record
from notifier.store.tables import (
    meeting_history,
    meetings,
    processed_events,
)


class MeetingQueries(QueriesBase):
    """Meetings, their history and the event ids already applied."""

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
        return _record(row)

    async def meeting_records_by_id(self, ids: Sequence[str]) -> dict[str, MeetingRecord]:
        """The stored meetings among `ids` (retired or not), by id, in one query."""
        found: dict[str, MeetingRecord] = {}
        for start in range(0, len(ids), 500):
            query = select(meetings).where(meetings.c.id.in_(list(ids[start : start + 500])))
            for row in (await self.connection.execute(query)).all():
                found[row.id] = _record(row)
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
        return [_record(row) for row in rows]

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
                    "cleared": list(entry.cleared) or None,
                    "clock": entry.clock.to_dict() if entry.clock else None,
                    "texts": thaw_texts(entry.texts),
                    "variants": thaw(entry.variants),
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

    async def visible_meetings(
        self,
        audience: str,
        *,
        limit: int,
        starting_from: datetime | None = None,
        starting_before: datetime | None = None,
        latest_first: bool = False,
    ) -> list[MeetingRecord]:
        """At most `limit` current meetings whose audience is `audience`, by start (soonest
        first, or latest first), within the given bounds of `starts_at`."""
        query = select(meetings).where(
            meetings.c.retired_at.is_(None), meetings.c.audience == audience
        )
        if starting_from is not None:
            query = query.where(meetings.c.starts_at >= starting_from)
        if starting_before is not None:
            query = query.where(meetings.c.starts_at < starting_before)
        if latest_first:
            query = query.order_by(meetings.c.starts_at.desc(), meetings.c.id.desc())
        else:
            query = query.order_by(meetings.c.starts_at, meetings.c.id)
        rows = (await self.connection.execute(query.limit(limit))).all()
        return [_record(row) for row in rows]

    async def visible_changes(
        self, audience: str, *, limit: int
    ) -> list[tuple[MeetingRecord, HistoryEntry]]:
        """The newest `limit` history entries of current meetings whose audience is
        `audience`, newest first, each with its meeting (two queries, whatever the size of
        the store)."""
        rows = (
            await self.connection.execute(
                select(meeting_history)
                .join(meetings, meetings.c.id == meeting_history.c.meeting_id)
                .where(meetings.c.retired_at.is_(None), meetings.c.audience == audience)
                .order_by(meeting_history.c.at.desc(), meeting_history.c.id.desc())
                .limit(limit)
            )
        ).all()
        records = await self.meeting_records_by_id(sorted({row.meeting_id for row in rows}))
        utc = ZoneInfo("UTC")
        return [(records[row.meeting_id], _history(row, utc)) for row in rows]

    async def visible_stamp(self, audience: str) -> Stamp:
        """The validator of what `audience` may see of the meetings (one query)."""
        visible = (meetings.c.retired_at.is_(None), meetings.c.audience == audience)
        latest = (
            select(func.max(meeting_history.c.id))
            .join(meetings, meetings.c.id == meeting_history.c.meeting_id)
            .where(*visible)
            .scalar_subquery()
        )
        row = (
            await self.connection.execute(
                select(func.count(), func.max(meetings.c.updated_at), latest).where(*visible)
            )
        ).one()
        updated = row[1]
        if isinstance(updated, str):  # SQLite hands an aggregate of datetimes back as text
            updated = datetime.fromisoformat(updated).replace(tzinfo=UTC)
        elif isinstance(updated, datetime) and updated.tzinfo is None:
            updated = updated.replace(tzinfo=UTC)
        return Stamp(meetings=int(row[0]), updated_at=updated, latest_change=int(row[2] or 0))

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
