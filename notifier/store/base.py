"""What every part of a transaction shares: its connection and its dialect, decided once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import TypeEngine


class QueriesBase:
    """Queries inside one database transaction (each aggregate's class adds its own)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        #: The dialect, decided once: PostgreSQL or SQLite (their INSERT ... ON CONFLICT).
        self.postgres = connection.dialect.name == "postgresql"
        self.dialect: Any = postgresql if self.postgres else sqlite

    def one_of(self, column: Any, values: Sequence[str], *, name: str = "ids") -> Any:
        """``column IN values`` as one bound parameter, so the list costs no per-element
        work in Python: ``= ANY(array)`` on PostgreSQL, ``IN (SELECT value FROM
        json_each(json))`` on SQLite. (SQLAlchemy's expanding IN renders one placeholder
        per element, and processes each, at every execution.)"""
        if self.postgres:
            return column == any_(bindparam(name, list(values), type_=ARRAY(String)))
        listed = func.json_each(bindparam(name, json.dumps(list(values)), type_=String))
        return column.in_(select(listed.table_valued("value").c.value).scalar_subquery())

    def json_rows(self, name: str, columns: Sequence[tuple[str, TypeEngine[Any]]]) -> FromClause:
        """A table of rows given as one JSON parameter `name` (a list of objects with the
        keys of `columns`; see `json_param`), for set-based writes of a whole batch in one
        statement: ``json_to_recordset`` on PostgreSQL, ``json_each`` on SQLite."""
        if self.postgres:
            return (
                func.json_to_recordset(cast(bindparam(name, type_=Text), JSON))
                .table_valued(*(column(key, type_) for key, type_ in columns))
                .render_derived(with_types=True)
            )
        each = func.json_each(bindparam(name, type_=Text)).table_valued("value")
        return select(
            *(func.json_extract(each.c.value, f"$.{key}").label(key) for key, _ in columns)
        ).subquery()

    def unindexed(self, column: Any) -> Any:
        """`column` in a form SQLite will not look up by index (a unary ``+``), so a join
        with `json_rows` is driven by the rows given, each found by primary key, rather
        than by scanning every row an index matches. PostgreSQL plans it well as is."""
        if self.postgres:
            return column
        return literal_column(f"+{column.table.name}.{column.name}", type_=column.type)

    def json_param(self, rows: Sequence[dict[str, Any]]) -> str:
        """`rows` as the JSON `json_rows` reads: datetimes as this database stores them
        (SQLite compares the text, so it must be SQLAlchemy's own format, in UTC)."""
        return json.dumps(rows, default=self._stamp, separators=(",", ":"))

    def _stamp(self, value: object) -> str:
        if not isinstance(value, datetime):
            raise TypeError(f"cannot pass {type(value).__name__} as JSON")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        if self.postgres:
            return value.isoformat()
        # SQLAlchemy's SQLite DATETIME format, microseconds always written.
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
