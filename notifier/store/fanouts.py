"""Fan-outs planned in chunks: what is left to plan of a change to many readers.

A change plans its first `fanout_chunk` readers in its own transaction and, when more may
follow, leaves a row here: the meeting as the change left it, the instant it was planned
at, and the last reader id planned. Expanders (`notifier.service.expand_fanout`, in any
replica) claim a row for a lease, plan the next chunk in one transaction with the row's
`after` moved on, and delete the row with the last chunk. Delivery ids are stable, so a
chunk planned twice (an expander died after committing, before it knew) queues nothing
new.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from notifier.domain.models import Meeting
from notifier.store.base import QueriesBase
from notifier.store.records import Fanout
from notifier.store.tables import fanouts


class FanoutQueries(QueriesBase):
    """Fan-outs still being planned."""

    async def add_fanout(self, meeting: Meeting, *, after: str, now: datetime) -> None:
        """Leave the rest of `meeting`'s latest change (readers after `after`) to expanders."""
        await self.connection.execute(
            insert(fanouts).values(
                meeting_id=meeting.id,
                sequence=meeting.sequence,
                meeting=meeting.to_dict(),
                planned_at=now,
                after=after,
            )
        )

    async def claim_fanout(self, *, worker: str, now: datetime, lease: timedelta) -> Fanout | None:
        """The oldest fan-out no live expander holds, now held by `worker` for `lease`."""
        clock: Any = func.now() if self.postgres else now
        free = or_(fanouts.c.claimed_until.is_(None), fanouts.c.claimed_until < clock)
        row = (
            await self.connection.execute(
                select(fanouts)
                .where(free)
                .order_by(fanouts.c.planned_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        await self.connection.execute(
            update(fanouts)
            .where(fanouts.c.meeting_id == row.meeting_id, fanouts.c.sequence == row.sequence)
            .values(claimed_by=worker, claimed_until=clock + lease)
        )
        return Fanout(
            meeting=Meeting.from_dict(row.meeting),
            sequence=row.sequence,
            planned_at=row.planned_at,
            after=row.after,
        )

    async def advance_fanout(
        self, fanout: Fanout, *, after: str | None, worker: str, lease: timedelta, now: datetime
    ) -> bool:
        """Record that readers up to `after` are planned (None: all are, the row goes),
        and hold it `lease` longer. False when `worker` no longer holds it (its lease ran
        out and another took it): the caller's transaction must then be rolled back."""
        key = and_(
            fanouts.c.meeting_id == fanout.meeting.id,
            fanouts.c.sequence == fanout.sequence,
            fanouts.c.claimed_by == worker,
            fanouts.c.after == fanout.after,
        )
        if after is None:
            result = await self.connection.execute(delete(fanouts).where(key))
        else:
            clock: Any = func.now() if self.postgres else now
            result = await self.connection.execute(
                update(fanouts).where(key).values(after=after, claimed_until=clock + lease)
            )
        return bool(result.rowcount)

    async def release_fanout(self, fanout: Fanout, *, worker: str) -> None:
        """Give a claimed fan-out back (on shutdown): another expander may take it at once."""
        await self.connection.execute(
            update(fanouts)
            .where(
                fanouts.c.meeting_id == fanout.meeting.id,
                fanouts.c.sequence == fanout.sequence,
                fanouts.c.claimed_by == worker,
            )
            .values(claimed_by=None, claimed_until=None)
        )

    async def fanouts_pending(self) -> int:
        """How many changes still have readers to plan."""
        return int(
            (await self.connection.execute(select(func.count()).select_from(fanouts))).scalar_one()
        )
