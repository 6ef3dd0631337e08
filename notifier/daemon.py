"""`notifier run`: the daemon as a supervisor of components.

`Daemon` builds each component once (leadership, the reminder scheduler, the outbox
workers, the config watcher, the feed pollers and their parser processes, the HTTP
server) and says what the operations endpoints report; `run_daemon` owns the process:
signals, the wait for the database, the one-daemon lock, and one stop event for
`supervise`, which starts the components in order and stops them in reverse
(`notifier.supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from notifier import __version__, metrics, service
from notifier.bounces import BounceListener, BounceMailbox
from notifier.clockrules import tzdata_version
from notifier.compose import (
    App,
    ConfigWatcher,
    feed_client,
    only_daemon,
    open_app,
    open_postman,
    outbox_worker,
    utcnow,
    wait_for_database,
)
from notifier.delivery import Postman
from notifier.domain.errors import NotifierError
from notifier.domain.mailbox import read_mailbox_url
from notifier.leadership import Leadership
from notifier.scheduler import Scheduler
from notifier.settings import Settings
from notifier.sources.parsers import Parsers
from notifier.sources.poller import SourcePoller
from notifier.store import Store
from notifier.store.engine import free_space, outage_reason, sqlite_file
from notifier.supervisor import (
    Component,
    Expander,
    HttpServer,
    LeadershipLoop,
    LoopLag,
    OutboxListener,
    ParserPool,
    Tasks,
    Timers,
    Workers,
    supervise,
)

log = logging.getLogger("notifier")

#: How long /readyz waits for its write to the database before it says not ready.
READY_TIMEOUT = 2.0


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard limit (an HTTP server and an outbox
    share it); the soft limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # a container may refuse; the old limit stands
            pass
    return soft


def bind_listener(listen: str, *, backlog: int) -> socket.socket:
    """The listening socket for `listen`, bound before anything else starts, or a
    `NotifierError` in one line that names the address and the setting that moves it."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    moved = "set `listen` in the config file or NOTIFIER_LISTEN to use another address"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise NotifierError(f"cannot listen on {listen}: {exc}; {moved}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise NotifierError(f"cannot listen on {listen}: {reason.lower()}; {moved}") from None
    return sock


#: What `http_server` imports, imported off the loop first (`_import_http_side`).
HTTP_SIDE = ("uvicorn", "notifier.web.app", "notifier.api.server")


def _import_http_side() -> None:
    """Import what `http_server` imports, so that its own imports find them loaded."""
    for name in HTTP_SIDE:
        importlib.import_module(name)


def http_server(
    settings: Settings,
    store: Store,
    postman: Postman,
    *,
    listener: socket.socket,
    descriptors: int,
    health: Callable[[], dict[str, Any]],
    ready: Callable[[], Awaitable[dict[str, Any]]],
    changed: Callable[[], None],
    stop: asyncio.Event,
) -> HttpServer:
    """The API served by uvicorn on the already bound `listener`, as a daemon component (a
    failure to serve stops all), with the limits of ``[http]`` (`notifier.api.server`)."""
    # The HTTP side (FastAPI, uvicorn) is imported here, by the daemon alone: every other
    # command starts a second sooner without it.
    import uvicorn

    from notifier.api.server import server_config
    from notifier.web.app import ApiContext, create_app

    class _Server(uvicorn.Server):
        """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    api = create_app(
        ApiContext(
            store=store,
            settings=settings,
            clock=utcnow,
            link_key=postman.link_key,
            health=health,
            ready=ready,
            on_change=changed,
            postman=postman,
        )
    )
    server = _Server(server_config(api, settings, descriptors=descriptors))

    def exit_() -> None:
        server.should_exit = True

    async def serve() -> None:
        await server.serve(sockets=[listener])

    return HttpServer(serve, exit_, on_failure=stop.set, listen=settings.listen)


class Announce:
    """Says once that the daemon has started (last in the start order)."""

    name = "start line"

    def __init__(self, say: Callable[[], Awaitable[None]]) -> None:
        self.say = say

    async def start(self, tasks: Tasks) -> None:
        await self.say()

    async def stop(self) -> None:
        return None


class Daemon:
    """Every component of one daemon process over one opened store, built once.

    Reads: `health` and `ready` (the operations endpoints), `components` (in start order).
    """

    def __init__(
        self,
        settings: Settings,
        app: App,
        postman: Postman,
        *,
        feeds: Any,
        stop: asyncio.Event,
        listener: socket.socket,
        descriptors: int,
    ) -> None:
        self.settings = settings
        self.store = app.store
        self.started = time.monotonic()
        self.background: set[asyncio.Task[Any]] = set()
        self.worker = outbox_worker(settings, app.store, postman)
        self.pollers: list[SourcePoller] = []
        self.parsers = Parsers(
            timeout=settings.feeds.parse_timeout.total_seconds(),
            memory_mib=settings.feeds.parse_memory_mib,
            size=settings.feeds.parsers,
        )
        self.leadership = Leadership(
            app.store,
            clock=utcnow,
            ttl=settings.leader.lease,
            sole=app.store.backend == "sqlite",
            on_change=self._leadership_changed,
        )
        self.scheduler = Scheduler(
            self.leadership.fenced,
            clock=utcnow,
            grace=settings.reminders.grace,
            sync_every=settings.reminders.sync,
            on_fired=self.worker.wake.set,
            leading=lambda: self.leadership.leading,
            horizon=settings.reminders.horizon,
        )
        self.watcher = ConfigWatcher(settings, app.store, on_change=self.changed)
        for source in settings.sources:
            poller = SourcePoller(
                self.leadership.fenced,
                source,
                feeds,
                clock=utcnow,
                on_change=self.changed,
                max_bytes=settings.feeds.max_bytes,
                parsers=self.parsers,
            )
            self.pollers.append(poller)
            self.scheduler.every(source.every, self._poll(poller), name=f"source {source.url}")
        self.scheduler.every(settings.config_watch, self.watcher.check, name="config-watch")
        self.scheduler.every(timedelta(hours=1), self._prune, name="prune")
        self.scheduler.every(service.RECHECK_EVERY, self._daily_clock_rules, name="clock-rules")
        #: The last look at the clock rules (`check_clock_rules`), for ``/healthz``.
        self.clock: dict[str, Any] = {"tzdata": tzdata_version(), "checked_at": None, "moved": 0}
        self.workers = Workers(
            self.worker, app.store, grace=settings.delivery.drain_timeout.total_seconds()
        )
        self.expander = Expander(
            app.store,
            clock=utcnow,
            on_chunk=self.worker.wake.set,
            lease=settings.delivery.fanout_lease,
        )
        self.lag = LoopLag()
        self.bounces = (
            BounceListener(
                app.store,
                listen=settings.bounces.listen,
                bounce_address=settings.bounces.address,
                key=postman.link_key,
                clock=utcnow,
            )
            if settings.bounces.listen and settings.bounces.address
            else None
        )
        self.mailbox = (
            BounceMailbox(
                app.store,
                mailbox=read_mailbox_url(settings.bounces.imap.get_secret_value()),
                every=settings.bounces.every.total_seconds(),
                bounce_address=settings.bounces.address,
                key=postman.link_key,
                clock=utcnow,
            )
            if settings.bounces.imap and settings.bounces.address
            else None
        )
        self.http = http_server(
            settings,
            app.store,
            postman,
            listener=listener,
            descriptors=descriptors,
            health=self.health,
            ready=self.ready,
            changed=self.changed,
            stop=stop,
        )

    def components(self) -> list[Component]:
        """In start order; stopped in reverse: intake ends first (HTTP, then timers and
        feed polls), the lease is handed over, then the workers finish what is in flight
        within ``delivery.drain_timeout`` and hand back the rest; the feed parser
        processes end last."""
        return [
            ParserPool(self.parsers),
            self.lag,
            self.workers,
            self.expander,
            OutboxListener(self.store, self.on_queued),
            LeadershipLoop(self.leadership, every=self.settings.leader.renew),
            Timers(self.scheduler),
            *([self.bounces] if self.bounces is not None else []),
            *([self.mailbox] if self.mailbox is not None else []),
            self.http,
            Announce(self.started_line),
        ]

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background, held until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def changed(self) -> None:
        """Something was written that may need sending, planning or (re)timing now."""
        self.on_queued()
        self.scheduler.poke()

    def on_queued(self) -> None:
        """Deliveries or fan-outs were queued (here, or by another replica: NOTIFY)."""
        self.worker.wake.set()
        self.expander.wake.set()

    def reload(self) -> None:
        """SIGHUP: read the config file again."""
        self.spawn(self.watcher.reload(reason="SIGHUP"))

    def _leadership_changed(self, leading: bool) -> None:
        # Taking over: set every timer and poll every feed now. Handing over: drop the
        # timers (their firings would be fenced off anyway).
        self.scheduler.poke()
        if leading:
            for poller in self.pollers:
                self.spawn(poller.poll())

    def _poll(self, poller: SourcePoller) -> Callable[[], Awaitable[None]]:
        async def poll() -> None:
            if self.leadership.leading:
                await poller.poll()

        return poll

    async def _prune(self) -> None:
        if self.leadership.leading:  # one replica prunes; the others would only wait
            await service.prune(self.store, retention=self.settings.retention, now=utcnow())

    async def check_clock_rules(self) -> None:
        """Act on what a change of the tz database moved (at start-up and daily): each
        meeting moved is logged, counted and announced by the service."""
        moves = await service.apply_clock_rules(self.store, now=utcnow())
        for move in moves:
            metrics.CLOCK_MOVES.labels(move.anchor.value).inc()
        self.clock = {
            "tzdata": tzdata_version(),
            "checked_at": utcnow().isoformat(),
            "moved": len(moves),
            "moved_total": self.clock.get("moved_total", 0) + len(moves),
        }

    async def _daily_clock_rules(self) -> None:
        if self.leadership.leading:  # the others would find nothing left to move
            await self.check_clock_rules()

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports beside status and version."""
        worker, leadership = self.worker, self.leadership
        return {
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "scheduler": {"running": self.scheduler.running, "timers": self.scheduler.pending},
            "worker": {
                "last_loop_at": worker.last_loop_at.isoformat() if worker.last_loop_at else None
            },
            "sources": len(self.settings.sources),
            "event_loop_lag_worst_seconds": round(self.lag.worst, 4),
            "clock_rules": self.clock,
            "expander": {"busy": self.expander.busy, "planned": self.expander.planned},
            "leader": {
                "leading": leadership.leading,
                "term": leadership.term,
                "replica": leadership.holder,
            },
        }

    async def ready(self) -> dict[str, Any]:
        """``/readyz``'s checks. Ready means the database takes writes, not only reads: a
        full or read-only disk, or a server in recovery, answers reads and refuses writes."""
        reasons: list[str] = []
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                async with self.store.write() as tx:
                    await tx.set_meta("ready_probe", utcnow().isoformat())
            database = True
        except Exception as exc:  # any failure to write to the database means not ready
            database = False
            reasons.append(f"{outage_reason(exc)} ({type(exc).__name__})")
        disk = self._disk_problem()
        if disk is not None:
            reasons.append(disk)
        now, scheduler = utcnow(), self.scheduler
        state: dict[str, Any] = {
            "database": database,
            "disk": disk is None,
            "scheduler": scheduler.running
            and scheduler.last_sync_at is not None
            and now - scheduler.last_sync_at < self.settings.reminders.sync * 5,
            "worker": self.worker.last_loop_at is not None and self.workers.running,
        }
        if reasons:
            state["reason"] = "; ".join(reasons)
        return state

    def _disk_problem(self) -> str | None:
        """Why the SQLite database's disk is too full to count on, or None. A full disk
        fails every write (status pushes 503) while reads still work: this says so before."""
        path, minimum = sqlite_file(self.settings.database_url), self.settings.min_free_disk
        if path is None or not minimum:
            return None
        where = path.resolve().parent
        try:
            free = free_space(where)
        except OSError as exc:
            return f"disk: cannot read free space on {where} ({exc.strerror})"
        if free >= minimum:
            return None
        return (
            f"disk nearly full: {free / 1024**2:.0f} MiB free on {where} "
            f"(min_free_disk is {minimum / 1024**2:.0f} MiB)"
        )

    async def started_line(self) -> None:
        """The one start-up line: version, database (no credentials), listen address,
        counts, and whether this replica leads."""
        async with self.store.read() as tx:
            counts = await tx.counts()
        leadership = self.leadership
        log.info(
            "notifier %s started: database %s, listen %s, meetings=%d subscribers=%d "
            "pending_reminders=%d, scheduler %s",
            __version__,
            self.store.url,
            self.settings.listen,
            counts.meetings,
            counts.subscribers,
            counts.pending_reminders,
            f"leader (term {leadership.term})" if leadership.leading else "follower",
            extra={"action": "start", "replica": leadership.holder, **counts.as_dict()},
        )


async def _recover_claims(store: Store) -> None:
    """One process owns a SQLite database: claims left behind are a crash's."""
    async with store.write() as tx:
        recovered = await tx.recover_claims()
    if recovered:
        log.warning(
            "%d deliveries were in flight when the last run stopped; resending",
            recovered,
            extra={"action": "recover", "deliveries": recovered},
        )


def freeze_loaded() -> None:
    """Before the loop starts: what is loaded by now (modules, the settings of every
    subscriber in the file) lives as long as the process, so it leaves the collector's
    sight here, where a full collection of it (~0.1 s for 1,800 subscribers) holds no
    loop; the collection `_run` makes once started then only walks what came after."""
    gc.collect()
    gc.freeze()


async def run_daemon(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `stop` is set), then shut down cleanly.

    Opens and migrates the store, reconciles the config file, starts the components (see
    `Daemon.components`) and logs one start-up line with the version, database (no
    credentials), listen address and counts. On stop: intake ends first (HTTP, timers),
    then the worker finishes in-flight deliveries within ``delivery.drain_timeout``, and
    the process exits 0.
    """
    stop = stop or asyncio.Event()
    descriptors = raise_descriptor_limit()
    async with contextlib.AsyncExitStack() as held:
        # The one-daemon lock of a SQLite file first (a check, nothing started): a second
        # daemon on it says so rather than that the port is taken.
        await held.enter_async_context(only_daemon(settings.database_url))
        # Then bound, before anything starts: with the address taken, no worker, no timer,
        # no start line, and the one error line says which address and which setting moves
        # it. uvicorn closes the socket when it served; the callback covers other exits.
        listener = bind_listener(settings.listen, backlog=settings.http.backlog)
        held.callback(listener.close)
        await _run(settings, stop, listener=listener, descriptors=descriptors)


async def _run(
    settings: Settings, stop: asyncio.Event, *, listener: socket.socket, descriptors: int
) -> None:
    """`run_daemon` once the lock is held and the socket bound."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not await wait_for_database(settings.database_url, stop):
            log.info("stopped while waiting for the database", extra={"action": "stop"})
            return
        async with (
            open_app(settings) as app,
            open_postman(settings, app.store) as postman,
            contextlib.AsyncExitStack() as stack,
        ):
            if app.store.backend == "sqlite":
                await _recover_claims(app.store)
            # Built in a thread: its TLS context reads the CA bundle (~70 ms), a step of
            # its own on the loop otherwise (tests/e2e/test_loop_debug.py).
            feeds = await stack.enter_async_context(await asyncio.to_thread(feed_client, settings))
            # The HTTP side's imports (FastAPI, uvicorn: ~0.2 s) off the loop, so that no
            # step of it holds the loop 100 ms, start-up included (tests/e2e/test_loop_debug.py).
            await asyncio.to_thread(_import_http_side)
            daemon = Daemon(
                settings,
                app,
                postman,
                feeds=feeds,
                stop=stop,
                listener=listener,
                descriptors=descriptors,
            )
            loop.add_signal_handler(signal.SIGHUP, daemon.reload)
            # Before anything is sent: meetings the tz database's rules moved since the last
            # run are set right (and announced) first.
            await daemon.check_clock_rules()
            # Everything loaded so far lives as long as the process: out of the collector's
            # sight, a full collection takes a millisecond instead of ~80 ms per pause while
            # a 17,000-event feed is applied (bench/bigfeed.py).
            await asyncio.sleep(0)  # the collection below is a loop step of its own
            gc.collect()
            gc.freeze()
            await asyncio.sleep(0)
            await supervise(daemon.components(), stop)
            if daemon.http.failed:
                raise NotifierError(f"cannot serve HTTP on {settings.listen}")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
