"""What every part of a transaction shares: its connection and its dialect, decided once."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.domain.audiences import Audiences

DEFAULT = Audiences()


class QueriesBase:
    """Queries inside one database transaction (each aggregate's class adds its own)."""

    def __init__(self, connection: AsyncConnection, audiences: Audiences = DEFAULT) -> None:
        self.connection = connection
        #: The installation's audiences, lowest first: what the service plans with.
        self.audiences = audiences
        #: The dialect, decided once: PostgreSQL or SQLite (their INSERT ... ON CONFLICT).
        self.postgres = connection.dialect.name == "postgresql"
        self.dialect: Any = postgresql if self.postgres else sqlite
