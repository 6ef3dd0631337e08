"""Installation-wide values, and the counts the start-up line shows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    func,
    select,
)

from notifier.store.base import QueriesBase
from notifier.store.records import _PENDING, Counts
from notifier.store.tables import (
    meetings,
    meta,
    reminders,
    subscribers,
)


class MetaQueries(QueriesBase):
    """Installation-wide values, and the counts the start-up line shows."""

    async def counts(self) -> Counts:
        """How many meetings, subscribers and pending reminders there are (not retired)."""

        async def count(query: Any) -> int:
            return int((await self.connection.execute(query)).scalar_one())

        return Counts(
            meetings=await count(
                select(func.count()).select_from(meetings).where(meetings.c.retired_at.is_(None))
            ),
            subscribers=await count(
                select(func.count())
                .select_from(subscribers)
                .where(subscribers.c.retired_at.is_(None))
            ),
            pending_reminders=await count(
                select(func.count()).select_from(reminders).where(reminders.c.state == _PENDING)
            ),
        )

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
