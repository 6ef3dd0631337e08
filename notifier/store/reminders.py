"""Planned reminders: replacing a meeting's plan, the pending ones, firing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    bindparam,
    insert,
    or_,
    select,
    update,
)

from notifier.domain.models import (
    Meeting,
)
from notifier.domain.reminders import Reminder, ReminderState
from notifier.store.meta import MetaQueries
from notifier.store.records import (
    _PENDING,
    _WITHDRAWN,
    REMINDERS_VERSION,
    StoredReminder,
    _reminder_row,
)
from notifier.store.tables import (
    UTCDateTime,
    meta,
    reminders,
)


class ReminderQueries(MetaQueries):
    """Planned reminders: replacing a meeting's plan, the pending ones, firing."""

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

    async def pending_reminders(
        self, *, before: datetime | None = None
    ) -> list[tuple[int, datetime]]:
        """(id, due instant) of every pending reminder (due before `before`, if given),
        soonest first."""
        query = select(reminders.c.id, reminders.c.due_at).where(reminders.c.state == _PENDING)
        if before is not None:
            query = query.where(reminders.c.due_at < before)
        rows = (await self.connection.execute(query.order_by(reminders.c.due_at))).all()
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
