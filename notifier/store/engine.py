"""Opening the database: the one place SQLite and PostgreSQL are told apart.

SQLite runs in WAL mode with a busy timeout, and every read-write transaction starts with
``BEGIN IMMEDIATE`` so that two writers (the daemon and a `notifier event` call) queue for
the write lock instead of failing on a lock upgrade; read-only ones begin deferred and
never wait. PostgreSQL uses asyncpg as it is.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

#: Execution option marking a transaction that only reads.
READ_ONLY = "notifier_read_only"

#: How long a SQLite writer waits for the lock before giving up, in seconds.
SQLITE_BUSY_TIMEOUT = 30

#: Connections a process keeps open, and how many more it may open under a burst. Beyond
#: the first number a connection is closed when returned, and opening one (a thread for
#: SQLite, a TLS attempt and login for PostgreSQL) costs more than most transactions:
#: API requests, outbox workers and the scheduler together use more than five at a time.
POOL = {"pool_size": 20, "max_overflow": 10}


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is away (restarting, unreachable, disk trouble),
    rather than that a statement was wrong: callers answer 503 and log one line for it."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # PostgreSQL says why in its SQLSTATE: 08 connection trouble, 53 out of resources (disk
    # full), 57 shutting down or starting up, 58 system errors, 25006 read-only.
    cause: BaseException | None = exc.orig
    while cause is not None:
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(state, str) and (state[:2] in _OUTAGE_CLASSES or state == "25006"):
            return True
        cause = cause.__cause__
    return False


_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})

#: PostgreSQL's SQLSTATE for "could not extend file: no space left on device".
PG_DISK_FULL = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the database's disk is full: SQLite's SQLITE_FULL ("database or
    disk is full"), PostgreSQL's SQLSTATE 53100, or ENOSPC from the file system."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        cause = stack.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if isinstance(cause, sqlite3.Error) and "database or disk is full" in str(cause):
            return True
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if state == PG_DISK_FULL:
            return True
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        stack += [getattr(cause, "orig", None), cause.__cause__, cause.__context__]
    return False


def outage_reason(exc: BaseException) -> str:
    """What an outage is, in the words logs and 503 answers use: ``disk full`` when the
    database's disk is, else ``database unavailable``."""
    return "disk full" if is_disk_full(exc) else "database unavailable"


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite database `url`, or None (PostgreSQL, or in memory)."""
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def free_space(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `path`
    (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


async def reachable(url: str) -> None:
    """Connect to `url` once and run ``SELECT 1``; raise what the database said if not."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def redact(url: str | URL) -> str:
    """`url` with any password hidden, fit for logs and start-up lines."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for `url` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    For a SQLite file, its folder is created when missing. Statement parameters never
    appear in errors (`hide_parameters`): they hold webhook secrets and addresses, and an
    error's text ends up in logs and tracebacks.
    """
    parsed = make_url(url)
    options = {"hide_parameters": True} | options
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **options)
    pool = {} if "poolclass" in options else POOL
    # A half-open connection (the server gone without a FIN) must not stall the daemon:
    # connecting and every statement have a deadline; pool checkout waits at most 10 s.
    timeouts = {"connect_args": {"timeout": 10, "command_timeout": 60}, "pool_timeout": 10}
    if "poolclass" in options:
        timeouts.pop("pool_timeout")
    return create_async_engine(parsed, pool_pre_ping=True, **(pool | timeouts | options))


def _sqlite_engine(url: URL, **options: Any) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    pool = POOL if database and database != ":memory:" and "poolclass" not in options else {}
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, **(pool | options)
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers take no lock up front, so they never wait behind a writer (WAL).
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
