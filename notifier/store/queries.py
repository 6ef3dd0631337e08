"""The store: opening the database, transactions, and the one `Transaction` type that
gathers every aggregate's queries (one module each: meetings, subscribers, outbox,
reminders, sources, leases, meta), for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.domain.audiences import Audiences
from notifier.domain.languages import Languages
from notifier.domain.planning import FANOUT_CHUNK, Planning
from notifier.store import migrate
from notifier.store.engine import READ_ONLY, create_engine, redact
from notifier.store.fanouts import FanoutQueries
from notifier.store.leases import LeaseQueries
from notifier.store.meetings import MeetingQueries
from notifier.store.outbox import OutboxQueries
from notifier.store.records import (
    OUTBOX_CHANNEL,
    Lease,
    log,
)
from notifier.store.sources import SourceQueries
from notifier.store.subscribers import SubscriberQueries
from notifier.waiting import wait_any

if TYPE_CHECKING:
    from notifier.store.port import StorePort, TransactionPort


class Transaction(
    MeetingQueries, SubscriberQueries, OutboxQueries, FanoutQueries, SourceQueries, LeaseQueries
):
    """Every query notifier runs, inside one database transaction."""


#: The `meta` key of this installation's id.
INSTALLATION_KEY = "installation_id"


def new_installation_id() -> str:
    """A fresh installation id: 128 random bits."""
    return "inst_" + uuid.uuid4().hex


class Store:
    """The database: open it, migrate it, and run transactions on it."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        write_lock: asyncio.Lock | None = None,
        audiences: Audiences | None = None,
        fanout_chunk: int = FANOUT_CHUNK,
        languages: Languages | None = None,
    ) -> None:
        self.engine = engine
        #: The installation's audiences and fan-out chunk: the service plans with them
        #: (`planning`), no transaction carries them.
        self.audiences = audiences or Audiences()
        self.fanout_chunk = fanout_chunk
        self.languages = languages or Languages()
        # SQLite runs one writer at a time, and a writer that finds the lock taken sleeps
        # in steps of up to 100 ms before it looks again. Writers of this process queue
        # here instead, and each starts the moment the one before it commits.
        self._write_lock = write_lock or asyncio.Lock()
        #: This installation's id (`INSTALLATION_KEY`), read once by `load_installation`.
        self.installation: str | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        upgrade: bool = True,
        audiences: Audiences | None = None,
        fanout_chunk: int = FANOUT_CHUNK,
        languages: Languages | None = None,
    ) -> Store:
        """Connect to `url`; with `upgrade`, first bring the schema to the latest revision."""
        store = cls(
            create_engine(url),
            audiences=audiences,
            fanout_chunk=fanout_chunk,
            languages=languages,
        )
        if upgrade:
            try:
                await migrate.upgrade(store.engine)
                await store.load_installation()
            except BaseException:
                await store.close()
                raise
        return store

    async def load_installation(self, *, renew: bool = False) -> str:
        """This installation's id: made (random) the first time the database is migrated,
        kept in it, and part of every delivery id (webhook-id, Message-ID), so that two
        databases never send the same id with different content. `renew` replaces it (a
        copy of a backup that will run beside the original, see README, Operations)."""
        async with self.engine.begin() as connection:
            tx = Transaction(connection)
            if renew:
                await tx.set_meta(INSTALLATION_KEY, new_installation_id())
            self.installation = await tx.meta_value(INSTALLATION_KEY, default=new_installation_id())
        return self.installation

    @property
    def planning(self) -> Planning:
        """What the service plans with: the audiences, the fan-out chunk and this
        installation's id (read by `write`, so inside a write transaction it is set)."""
        return Planning(
            audiences=self.audiences,
            fanout_chunk=self.fanout_chunk,
            installation=self.installation or "",
            languages=self.languages,
        )

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return redact(self.engine.url)

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A read-write transaction, committed on normal exit and rolled back on error."""
        if self.installation is None:  # `planning` needs it inside every write
            await self.load_installation()
        if self.backend != "sqlite":
            async with self.engine.begin() as connection:
                yield Transaction(connection)
            return
        async with self._write_lock, self.engine.begin() as connection:
            yield Transaction(connection)

    async def listen_outbox(
        self, on_notify: Callable[[], None], stop: asyncio.Event, *, check: float = 5.0
    ) -> None:
        """Call `on_notify` whenever any process queues deliveries, until `stop` is set.

        PostgreSQL only (returns at once on SQLite): one connection LISTENs on
        `OUTBOX_CHANNEL`; when it is lost (a database restart) it is opened again every
        `check` seconds. A worker still polls, so a lost notification only costs time.
        """
        if self.backend != "postgresql":
            return
        while not stop.is_set():
            try:
                async with self.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver = raw.driver_connection
                    assert driver is not None

                    def heard(*_: object) -> None:
                        on_notify()

                    await driver.add_listener(OUTBOX_CHANNEL, heard)
                    on_notify()  # anything queued while not listening
                    while not stop.is_set() and not driver.is_closed():
                        await wait_any(stop, timeout=check)
                    if not driver.is_closed():
                        await driver.remove_listener(OUTBOX_CHANNEL, heard)
            except Exception as exc:  # the database is away; the worker keeps polling
                log.warning("not listening for new deliveries: %s", exc)
            if not stop.is_set():
                await wait_any(stop, timeout=check)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """A transaction for reading; nothing written in it is committed."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            yield Transaction(connection)
            await connection.rollback()


class FencedStore(Store):
    """The same database, but every write transaction first checks a fencing term.

    Work only the scheduler leader may do (firing reminders, applying feed polls) runs
    through one of these: `lease()` says which term this replica holds (None when it holds
    none), and a transaction under a term that has since moved on raises `NotLeader` before
    it writes anything, and keeps a takeover waiting until it ends.
    """

    def __init__(self, store: Store, lease: Callable[[], Lease | None]) -> None:
        super().__init__(
            store.engine,
            write_lock=store._write_lock,
            audiences=store.audiences,
            fanout_chunk=store.fanout_chunk,
            languages=store.languages,
        )
        self._lease = lease

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A read-write transaction under the current term."""
        async with super().write() as tx:
            await tx.check_fence(self._lease())
            yield tx


def _implements(tx: Transaction, store: Store, fenced: FencedStore) -> None:
    """Never called: mypy checks here that the SQLAlchemy store implements the port (kept
    beside the adapter, so that `notifier.store.port` need not import it)."""
    _tx: TransactionPort = tx
    _store: StorePort = store
    _fenced: StorePort = fenced
