"""The composition root: builds the store and services from settings, runs the daemon.

The only module that wires adapters together and the only one that reads the clock for
the rest (`utcnow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from notifier import __version__, service
from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.delivery import OutboxWorker, Postman
from notifier.domain.errors import ConfigError, NotifierError
from notifier.domain.retry import RetryPolicy
from notifier.egress import GuardedTransport
from notifier.leadership import Leadership
from notifier.locate import cite
from notifier.rendering import Renderer
from notifier.scheduler import Scheduler
from notifier.settings import Settings, load_settings
from notifier.sources.poller import SourcePoller, stop_parser
from notifier.store import Store, migrate
from notifier.store.engine import is_outage, reachable, redact
from notifier.supervisor import (
    HttpServer,
    LeadershipLoop,
    OutboxListener,
    Tasks,
    Timers,
    Workers,
    supervise,
)
from notifier.tokens import new_key

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


async def unsubscribe_key(store: Store) -> str:
    """The installation's unsubscribe signing key, created on first use."""
    async with store.write() as tx:
        return await tx.meta_value("unsubscribe_key", default=new_key())


@asynccontextmanager
async def open_postman(settings: Settings, store: Store) -> AsyncIterator[Postman]:
    """The renderer and both channels, open for the duration of the block."""
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
        ) as email,
    ):
        yield Postman(
            renderer=renderer,
            email=email,
            webhook=webhook,
            sender=smtp.sender,
            public_url=str(settings.public_url),
            unsubscribe_key=await unsubscribe_key(store),
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
    store = await Store.open(settings.database_url)
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
    store = await Store.open(settings.database_url, upgrade=False)
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
        #: The database was away at the last reload: say so once, and when it is applied.
        self._waiting = False

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
                if not self._waiting:
                    self._waiting = True
                    log.warning(
                        "config reload (%s) waits for the database: %s",
                        reason,
                        type(exc).__name__,
                        extra={"action": "reload_waiting"},
                    )
                return None
            restart = [
                key
                for key in Settings.model_fields
                if key not in ("meetings", "subscribers", "config_path")
                and getattr(fresh, key) != getattr(self.settings, key)
            ]
            self._waiting = False
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
    delay, since = 1.0, time.monotonic()
    waiting = False
    while not stop.is_set():
        try:
            await reachable(url)
        except Exception as exc:
            if not is_outage(exc):
                raise
            if not waiting:
                waiting = True
                log.warning(
                    "waiting for the database %s (%s); retrying with backoff up to %ds",
                    redact(url),
                    type(exc).__name__,
                    longest,
                    extra={"action": "database_wait"},
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, longest)
            continue
        if waiting:
            log.warning(
                "the database answers after %.0fs; starting",
                time.monotonic() - since,
                extra={"action": "database_back"},
            )
        return True
    return False


#: How long /readyz waits for its write to the database before it says not ready.
READY_TIMEOUT = 2.0


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


def http_server(
    settings: Settings,
    store: Store,
    postman: Postman,
    *,
    health: Callable[[], dict[str, Any]],
    ready: Callable[[], Awaitable[dict[str, Any]]],
    changed: Callable[[], None],
    stop: asyncio.Event,
) -> HttpServer:
    """The API served by uvicorn, as a daemon component (a failure to serve stops all)."""
    # The HTTP side (FastAPI, uvicorn) is imported here, by the daemon alone: every other
    # command starts a second sooner without it.
    import uvicorn

    from notifier.api.app import ApiContext, create_api

    class _Server(uvicorn.Server):
        """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    api = create_api(
        ApiContext(
            store=store,
            settings=settings,
            clock=utcnow,
            unsubscribe_key=postman.unsubscribe_key,
            health=health,
            ready=ready,
            on_change=changed,
        )
    )
    host, _, port = settings.listen.rpartition(":")
    server = _Server(
        uvicorn.Config(
            api,
            host=host.strip("[]"),
            port=int(port),
            log_level="warning",
            http="httptools",
            lifespan="off",
            access_log=False,
        )
    )

    def exit_() -> None:
        server.should_exit = True

    return HttpServer(server.serve, exit_, on_failure=stop.set, listen=settings.listen)


class Announce:
    """Says once that the daemon has started (last in the start order)."""

    name = "start line"

    def __init__(self, say: Callable[[], Awaitable[None]]) -> None:
        self.say = say

    async def start(self, tasks: Tasks) -> None:
        await self.say()

    async def stop(self) -> None:
        return None


async def run_daemon(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `stop` is set), then shut down cleanly.

    Opens and migrates the store, reconciles the config file, starts the HTTP server, the
    reminder scheduler, the config watcher and the outbox worker, and logs one start-up
    line with the version, database (no credentials), listen address and counts. On stop:
    intake ends first (HTTP, timers), then the worker finishes in-flight deliveries within
    ``delivery.drain_timeout``, and the process exits 0.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not await wait_for_database(settings.database_url, stop):
            log.info("stopped while waiting for the database", extra={"action": "stop"})
            return
        async with (
            only_daemon(settings.database_url),
            open_app(settings) as app,
            open_postman(settings, app.store) as postman,
            contextlib.AsyncExitStack() as stack,
        ):
            if app.store.backend == "sqlite":
                # One process owns a SQLite database: claims left behind are a crash's.
                async with app.store.write() as tx:
                    recovered = await tx.recover_claims()
                if recovered:
                    log.warning(
                        "%d deliveries were in flight when the last run stopped; resending",
                        recovered,
                        extra={"action": "recover", "deliveries": recovered},
                    )
            worker = outbox_worker(settings, app.store, postman)
            background: set[asyncio.Task[Any]] = set()

            def spawn(work: Any) -> None:
                task = loop.create_task(work)
                background.add(task)
                task.add_done_callback(background.discard)

            pollers: list[SourcePoller] = []

            def leadership_changed(leading: bool) -> None:
                # Taking over: set every timer and poll every feed now. Handing over: drop
                # the timers (their firings would be fenced off anyway).
                scheduler.poke()
                if leading:
                    for poller in pollers:
                        spawn(poller.poll())

            leadership = Leadership(
                app.store,
                clock=utcnow,
                ttl=settings.leader.lease,
                sole=app.store.backend == "sqlite",
                on_change=leadership_changed,
            )
            scheduler = Scheduler(
                leadership.fenced,
                clock=utcnow,
                grace=settings.reminders.grace,
                sync_every=settings.reminders.sync,
                on_fired=worker.wake.set,
                leading=lambda: leadership.leading,
            )

            def changed() -> None:
                worker.wake.set()
                scheduler.poke()

            watcher = ConfigWatcher(settings, app.store, on_change=changed)
            loop.add_signal_handler(signal.SIGHUP, lambda: spawn(watcher.reload(reason="SIGHUP")))
            feeds = await stack.enter_async_context(feed_client(settings))
            stack.callback(stop_parser)  # the feed parser process, started on first use
            for source in settings.sources:
                poller = SourcePoller(
                    leadership.fenced,
                    source,
                    feeds,
                    clock=utcnow,
                    on_change=changed,
                    max_bytes=settings.feeds.max_bytes,
                )
                pollers.append(poller)

                async def poll(poller: SourcePoller = poller) -> None:
                    if leadership.leading:
                        await poller.poll()

                scheduler.every(source.every, poll, name=f"source {source.url}")
            scheduler.every(settings.config_watch, watcher.check, name="config-watch")

            async def prune() -> None:
                if leadership.leading:  # one replica prunes; the others would only wait
                    await service.prune(app.store, retention=settings.retention, now=utcnow())

            scheduler.every(timedelta(hours=1), prune, name="prune")
            workers = Workers(
                worker, app.store, grace=settings.delivery.drain_timeout.total_seconds()
            )

            def health() -> dict[str, Any]:
                return {
                    "uptime_seconds": round(time.monotonic() - started, 1),
                    "scheduler": {"running": scheduler.running, "timers": scheduler.pending},
                    "worker": {
                        "last_loop_at": worker.last_loop_at.isoformat()
                        if worker.last_loop_at
                        else None
                    },
                    "sources": len(settings.sources),
                    "leader": {
                        "leading": leadership.leading,
                        "term": leadership.term,
                        "replica": leadership.holder,
                    },
                }

            async def ready() -> dict[str, Any]:
                # Ready means the database takes writes, not only reads: a full or
                # read-only disk, or a server in recovery, answers reads and refuses writes.
                try:
                    async with asyncio.timeout(READY_TIMEOUT):
                        async with app.store.write() as tx:
                            await tx.set_meta("ready_probe", utcnow().isoformat())
                    database = True
                except Exception:  # any failure to write to the database means not ready
                    database = False
                now = utcnow()
                return {
                    "database": database,
                    "scheduler": scheduler.running
                    and scheduler.last_sync_at is not None
                    and now - scheduler.last_sync_at < settings.reminders.sync * 5,
                    "worker": worker.last_loop_at is not None and workers.running,
                }

            http = http_server(
                settings, app.store, postman, health=health, ready=ready, changed=changed, stop=stop
            )
            # Everything loaded so far lives as long as the process: out of the collector's
            # sight, a full collection takes a millisecond instead of ~80 ms per pause while
            # a 17,000-event feed is applied (bench/bigfeed.py).
            gc.collect()
            gc.freeze()

            async def started_line() -> None:
                async with app.store.read() as tx:
                    counts = await tx.counts()
                log.info(
                    "notifier %s started: database %s, listen %s, meetings=%d subscribers=%d "
                    "pending_reminders=%d, scheduler %s",
                    __version__,
                    app.store.url,
                    settings.listen,
                    counts["meetings"],
                    counts["subscribers"],
                    counts["pending_reminders"],
                    f"leader (term {leadership.term})" if leadership.leading else "follower",
                    extra={"action": "start", "replica": leadership.holder, **counts},
                )

            # Started in this order, stopped in the reverse: intake ends first (HTTP, then
            # timers and feed polls), the lease is handed over, then the worker finishes
            # what is in flight within `delivery.drain_timeout` and hands back the rest.
            await supervise(
                [
                    workers,
                    OutboxListener(app.store, worker.wake.set),
                    LeadershipLoop(leadership, every=settings.leader.renew),
                    Timers(scheduler),
                    http,
                    Announce(started_line),
                ],
                stop,
            )
            if http.failed:
                raise NotifierError(f"cannot serve HTTP on {settings.listen}")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
