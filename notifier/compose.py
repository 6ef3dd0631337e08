"""The composition root: builds the store, the postman, the worker and the config
watcher from settings, for the daemon (`notifier.daemon`) and the CLI alike.

The only modules that wire adapters together are this one and `notifier.daemon`; this
one reads the clock for the rest (`utcnow`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from notifier import __version__, service
from notifier.channels.chat import ChatChannel
from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.delivery import OutboxWorker, Postman
from notifier.domain.errors import ConfigError, NotifierError
from notifier.domain.retry import RetryPolicy
from notifier.egress import GuardedTransport
from notifier.locate import cite
from notifier.rendering import Renderer
from notifier.settings import Settings, load_settings
from notifier.store import Store, migrate
from notifier.store.engine import is_outage, reachable, redact
from notifier.tokens import new_key
from notifier.trouble import Trouble
from notifier.waiting import wait_any

log = logging.getLogger("notifier")


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class App:
    """Everything a command or the daemon needs, built from one `Settings`."""

    settings: Settings
    store: Store


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe: immediately, then each configured delay."""
    return RetryPolicy(
        schedule=(timedelta(0), *settings.delivery.retry_schedule),
        jitter=settings.delivery.jitter,
    )


async def link_key(store: Store) -> str:
    """The installation's key for signed links (unsubscribe, manage, calendar, bounce
    return paths), created on first use."""
    async with store.write() as tx:
        # Stored under its first name: every link already sent was signed with it.
        return await tx.meta_value("unsubscribe_key", default=new_key())


@asynccontextmanager
async def open_postman(settings: Settings, store: Store) -> AsyncIterator[Postman]:
    """The renderer and every channel, open for the duration of the block."""
    smtp = settings.smtp
    renderer = Renderer(settings.templates_dir)
    async with (
        WebhookChannel(
            timeout=settings.webhooks.timeout.total_seconds(),
            allow=settings.webhooks.allow_cidrs,
            concurrency=settings.delivery.concurrency,
            user_agent=f"notifier/{__version__}",
        ) as webhook,
        EmailChannel(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            timeout=smtp.timeout.total_seconds(),
            pool_size=settings.delivery.smtp_connections,
            signer=smtp.dkim.signer() if smtp.dkim is not None else None,
        ) as email,
        ChatChannel(
            timeout=settings.notify.timeout.total_seconds(),
            threads=settings.notify.threads,
            allow=settings.webhooks.allow_cidrs,
            schemes=settings.notify.schemes,
        ) as chat,
    ):
        yield Postman(
            renderer=renderer,
            email=email,
            webhook=webhook,
            sender=smtp.sender,
            public_url=str(settings.public_url),
            link_key=await link_key(store),
            chat=chat,
            pages=settings.public.enabled,
            bounce_address=settings.bounces.address,
        )


def outbox_worker(settings: Settings, store: Store, postman: Postman) -> OutboxWorker:
    """An outbox worker configured from `settings`."""
    return OutboxWorker(
        store,
        postman,
        policy=retry_policy(settings),
        clock=utcnow,
        batch=settings.delivery.batch,
        concurrency=settings.delivery.concurrency,
        lease=settings.delivery.lease,
        poll=settings.delivery.poll,
        parallel=settings.delivery.parallel,
        disable_after=settings.webhooks.disable_after or None,
        operator_email=settings.operator_email,
    )


async def reconcile_file(store: Store, settings: Settings) -> service.ReconcileReport:
    """Reconcile the config file into `store`; an error names the file's line."""
    try:
        return await service.reconcile(store, settings, now=utcnow())
    except ConfigError as exc:
        raise cite(exc, settings.config_path) from None


@asynccontextmanager
async def open_app(settings: Settings, *, reconcile: bool = True) -> AsyncIterator[App]:
    """Open the store (migrating it) and, with `reconcile`, sync the config file into it."""
    store = await Store.open(
        settings.database_url,
        audiences=settings.audience_order,
        fanout_chunk=settings.delivery.fanout_chunk,
        languages=settings.language_order,
    )
    try:
        if reconcile:
            await reconcile_file(store, settings)
        yield App(settings=settings, store=store)
    finally:
        await store.close()


def _missing_sqlite_file(database_url: str) -> str | None:
    """The path of a SQLite database file that does not exist (opening would create it)."""
    url = make_url(database_url)
    path = url.database
    if url.get_backend_name() != "sqlite" or path in (None, "", ":memory:"):
        return None
    return None if Path(str(path)).exists() else str(path)


@asynccontextmanager
async def open_read_only(settings: Settings) -> AsyncIterator[App]:
    """Open the store to read it as it is: never created, migrated or written.

    A database that is missing or not at this version's schema is a `ConfigError` saying
    which command brings it there.
    """
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise ConfigError(
            f"no database at {missing}: create it with `notifier db upgrade` (or start the daemon)"
        )
    store = await Store.open(
        settings.database_url,
        upgrade=False,
        audiences=settings.audience_order,
        fanout_chunk=settings.delivery.fanout_chunk,
        languages=settings.language_order,
    )
    try:
        current, head = await migrate.current_revision(store.engine), migrate.head_revision()
        if current != head:
            raise ConfigError(
                f"the database is at schema revision {current or 'none'}, this notifier "
                f"reads {head}: run `notifier db upgrade`"
            )
        yield App(settings=settings, store=store)
    finally:
        await store.close()


class ConfigWatcher:
    """Reloads the config file when it changes on disk or on SIGHUP.

    A broken edit is refused with a logged error and the last good config keeps running.
    Meetings and subscribers are reconciled; other settings need a restart, and a reload
    that changes them says so.
    """

    def __init__(self, settings: Settings, store: Store, *, on_change: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self.on_change = on_change
        self.path = settings.config_path
        self._stamp = self._mtime()
        self._lock = asyncio.Lock()
        #: The database was away at the last reload: say so once, until one is applied.
        self._waiting: Trouble[float] = Trouble(log)

    def _mtime(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat() if self.path else None
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size) if stat else None

    async def check(self) -> None:
        """Reload if the file changed since the last look (again later if the database
        was away, so an edit made during an outage is applied once it is back)."""
        stamp = self._mtime()
        if stamp != self._stamp and await self.reload(reason="file changed") is not None:
            self._stamp = stamp

    async def reload(self, *, reason: str) -> bool | None:
        """Read the file again and reconcile it; False (and an error logged) if refused,
        None if the database is away (one line when that starts; the next check retries)."""
        async with self._lock:
            try:
                fresh = load_settings(self.path)
                report = await reconcile_file(self.store, fresh)
            except NotifierError as exc:
                log.error(
                    "config reload (%s) refused, the last good config keeps running: %s",
                    reason,
                    exc.message,
                    extra={"action": "reload_refused"},
                )
                return False
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._waiting.failed(
                    "config reload (%s) waits for the database: %s",
                    reason,
                    type(exc).__name__,
                    now=time.monotonic(),
                    extra={"action": "reload_waiting"},
                )
                return None
            restart = [
                key
                for key in Settings.model_fields
                if key not in ("meetings", "subscribers", "config_path")
                and getattr(fresh, key) != getattr(self.settings, key)
            ]
            self._waiting.recovered(now=time.monotonic())  # the line below says it
            log.info(
                "config reloaded (%s): %s%s",
                reason,
                report.summary(),
                f"; restart to apply {', '.join(restart)}" if restart else "",
                extra={"action": "reload"},
            )
            self.settings = fresh.model_copy(update={k: getattr(self.settings, k) for k in restart})
            self.on_change()
            return True


async def wait_for_database(url: str, stop: asyncio.Event, *, longest: float = 30.0) -> bool:
    """Wait until the database at `url` answers, retrying with backoff (1 s, doubling, at
    most `longest`); one line when waiting starts and one when it ends. False if `stop` was
    set first. Errors that are not an outage (a wrong password, an unknown database) are
    raised at once: waiting would not fix them."""
    delay = 1.0
    waiting: Trouble[float] = Trouble(log)
    while not stop.is_set():
        # The wait is timed from the start of the attempt that failed first (the first:
        # any other outcome returns or raises).
        attempted = time.monotonic()
        try:
            await reachable(url)
        except Exception as exc:
            if not is_outage(exc):
                raise
            waiting.failed(
                "waiting for the database %s (%s); retrying with backoff up to %ds",
                redact(url),
                type(exc).__name__,
                longest,
                now=attempted,
                extra={"action": "database_wait"},
            )
            await wait_any(stop, timeout=delay)
            delay = min(delay * 2, longest)
            continue
        waiting.recovered(
            "the database answers after %.0fs; starting",
            now=time.monotonic(),
            extra={"action": "database_back"},
        )
        return True
    return False


@asynccontextmanager
async def only_daemon(database_url: str) -> AsyncIterator[None]:
    """Hold the one-daemon lock of a SQLite database file for as long as the daemon runs.

    A SQLite database has one daemon: a second one would take the first's in-flight
    deliveries for a crash's and send them again. The lock (``flock`` on a file beside the
    database) goes with the process, even on kill -9. PostgreSQL takes any number of
    replicas and needs none.
    """
    url = make_url(database_url)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
        yield
        return
    lock_path = Path(path).with_name(Path(path).name + ".daemon.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise NotifierError(
                f"another notifier daemon (pid {holder}) is running on {path}; a SQLite "
                "database has one daemon (use PostgreSQL for several replicas)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def feed_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client feeds are fetched with: every request and redirect goes only to
    allowed addresses."""
    return httpx.AsyncClient(
        timeout=15.0,
        follow_redirects=True,
        max_redirects=5,
        trust_env=False,
        transport=GuardedTransport(settings.feeds.allow_cidrs),
    )
