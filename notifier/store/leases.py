"""Leases that let one replica of many do a job alone (the scheduler)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    select,
    update,
)

from notifier.domain.errors import NotLeader
from notifier.store.base import QueriesBase
from notifier.store.records import Lease
from notifier.store.tables import (
    leases,
)


class LeaseQueries(QueriesBase):
    """Leases that let one replica of many do a job alone (the scheduler)."""

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
