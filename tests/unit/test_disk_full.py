"""A full disk is named as such: SQLite's SQLITE_FULL (provoked for real with
``PRAGMA max_page_count``), PostgreSQL's SQLSTATE 53100 and ENOSPC say "disk full", any
other database trouble stays "database unavailable"."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from notifier.store.engine import (
    create_engine,
    free_space,
    is_disk_full,
    is_outage,
    outage_reason,
    sqlite_file,
)


def _full_sqlite(path: Path) -> sqlite3.Error:
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE t (b BLOB)")
        connection.execute("PRAGMA max_page_count = 3")
        with pytest.raises(sqlite3.Error) as raised:
            connection.execute("INSERT INTO t VALUES (randomblob(100000))")
        return raised.value
    finally:
        connection.close()


def test_sqlite_full_is_disk_full(tmp_path: Path) -> None:
    error = _full_sqlite(tmp_path / "full.db")
    assert error.sqlite_errorcode == sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert is_disk_full(error)


def test_sqlite_full_through_sqlalchemy_and_aiosqlite_is_disk_full(tmp_path: Path) -> None:
    async def provoke() -> BaseException:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'full.db'}")
        try:
            async with engine.connect() as connection:
                await connection.execute(text("CREATE TABLE t (b BLOB)"))
                await connection.execute(text("PRAGMA max_page_count = 3"))
                insert = text("INSERT INTO t VALUES (randomblob(100000))")
                with pytest.raises(OperationalError) as raised:
                    await connection.execute(insert)
            return raised.value
        finally:
            await engine.dispose()

    error = asyncio.run(provoke())
    assert is_outage(error)
    assert is_disk_full(error)
    assert outage_reason(error) == "disk full"


def test_other_database_trouble_is_not_disk_full(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "other.db")
    with pytest.raises(sqlite3.Error) as raised:
        connection.execute("SELECT * FROM missing")
    connection.close()
    assert not is_disk_full(raised.value)
    assert outage_reason(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == (
        "database unavailable"
    )


def test_postgresql_disk_full_and_enospc_are_disk_full() -> None:
    assert asyncpg.exceptions.DiskFullError.sqlstate == "53100"
    assert is_disk_full(asyncpg.exceptions.DiskFullError("could not extend file"))
    assert not is_disk_full(asyncpg.exceptions.TooManyConnectionsError("too many"))
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))


def test_the_database_file_and_its_free_space(tmp_path: Path) -> None:
    assert sqlite_file(f"sqlite+aiosqlite:///{tmp_path}/var/n.db") == tmp_path / "var" / "n.db"
    assert sqlite_file("sqlite+aiosqlite:///var/notifier.db") == Path("var/notifier.db")
    assert sqlite_file("postgresql+asyncpg://u@h/db") is None
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    # A directory not made yet is measured on the file system it will be made on.
    assert free_space(tmp_path / "not" / "yet") > 0
