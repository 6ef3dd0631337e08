"""Watched sources: their health, counts and what each event last said."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    delete,
    select,
)

from notifier.store.base import QueriesBase
from notifier.store.records import SourceState, _item_id
from notifier.store.tables import (
    source_items,
    sources,
)


class SourceQueries(QueriesBase):
    """Watched sources: their health, counts and what each event last said."""

    async def source_state(self, url: str) -> SourceState:
        """A watched source's health and last read (empty for one never read)."""
        row = (await self.connection.execute(select(sources).where(sources.c.url == url))).first()
        if row is None:
            return SourceState(url=url)
        return SourceState.from_row(row)

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

    async def source_states(self) -> list[SourceState]:
        """Every watched source's health and last read, by URL."""
        rows = (await self.connection.execute(select(sources).order_by(sources.c.url))).all()
        return [SourceState.from_row(row) for row in rows]
