"""The daemon's parts, each started and stopped as one, and the supervisor that runs them.

`supervise` starts components in the order given and, when told to stop (or when a part
that must keep running ends), stops them in the reverse order, under one
`asyncio.TaskGroup` and one `contextlib.AsyncExitStack`: the shutdown order is the start
order read backwards, written in one place (`notifier.daemon.Daemon.components`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol

from notifier import metrics, service
from notifier.delivery import OutboxWorker, drain
from notifier.leadership import Leadership
from notifier.scheduler import Scheduler
from notifier.sources.parsers import Parsers
from notifier.store import Store
from notifier.store.engine import is_outage
from notifier.trouble import Trouble
from notifier.waiting import wait_any

log = logging.getLogger(__name__)


class Tasks:
    """Where components run their long work: tasks of the supervisor's `TaskGroup`, each
    guarded so that one ending in an error stops the daemon in order (logged), instead
    of the group cancelling every other part mid-work."""

    def __init__(self, group: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        self.group, self.stop = group, stop

    def create_task(
        self, work: Callable[[], Coroutine[Any, Any, None]], *, name: str
    ) -> asyncio.Task[None]:
        """Run ``work()`` (called in the task, so a task cancelled before it starts leaves
        no coroutine unawaited)."""

        async def guarded() -> None:
            try:
                await work()
            except Exception:
                log.exception("%s failed; notifier stops", name)
                self.stop.set()

        return self.group.create_task(guarded(), name=name)


class Component(Protocol):
    """A part of the daemon: `start` returns once it runs (its long work in `tasks`);
    `stop` returns once it has stopped."""

    name: str

    async def start(self, tasks: Tasks) -> None: ...

    async def stop(self) -> None: ...


async def supervise(components: list[Component], stop: asyncio.Event) -> None:
    """Start `components` in order, wait for `stop`, then stop them in reverse order.

    A component whose start fails stops those already started (reverse order) and the
    error propagates; tasks still running when every component has stopped are awaited.
    """
    async with asyncio.TaskGroup() as group, contextlib.AsyncExitStack() as started:
        tasks = Tasks(group, stop)
        for component in components:
            await component.start(tasks)
            started.push_async_callback(_stopping, component)
        await stop.wait()
        log.info("notifier stopping", extra={"action": "stop"})


async def _stopping(component: Component) -> None:
    try:
        await component.stop()
    except Exception:  # one part failing to stop must not keep the others running
        log.exception("%s did not stop cleanly", component.name)


class Task:
    """Shared shape: a coroutine run until an event asks it to end."""

    name = "task"

    def __init__(self) -> None:
        self.quit = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def _finish(self) -> None:
        self.quit.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


class LoopLag(Task):
    """Measures how late the event loop runs a task that slept `every` seconds, into
    `notifier_event_loop_lag_seconds`: anything that blocks the loop shows there."""

    name = "loop lag monitor"

    def __init__(self, every: float = 0.25, observe: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self.every = every
        self.observe = observe or metrics.EVENT_LOOP_LAG.observe
        #: The largest lag seen (for /healthz and tests).
        self.worst = 0.0

    async def start(self, tasks: Tasks) -> None:
        self.task = tasks.create_task(self._measure, name=self.name)

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.quit.is_set():
            asked = loop.time()
            await wait_any(self.quit, timeout=self.every)
            lag = max(0.0, loop.time() - asked - self.every)
            if not self.quit.is_set():
                self.worst = max(self.worst, lag)
                self.observe(lag)

    async def stop(self) -> None:
        await self._finish()


class Workers(Task):
    """The outbox worker. Stopping lets in-flight deliveries finish within `grace`, then
    hands back to the queue what could not (not left for the lease to return)."""

    name = "outbox worker"

    def __init__(self, worker: OutboxWorker, store: Store, *, grace: float) -> None:
        super().__init__()
        self.worker, self.store, self.grace = worker, store, grace

    async def start(self, tasks: Tasks) -> None:
        self.task = tasks.create_task(lambda: self.worker.run(self.quit), name=self.worker.name)

    async def stop(self) -> None:
        self.quit.set()
        if self.task is not None:
            await drain([self.task], grace=self.grace)
        try:
            async with self.store.write() as tx:
                released = await tx.release_claims(self.worker.name)
            if released:
                log.warning(
                    "%d deliveries were still in flight at stop; handed back",
                    released,
                    extra={"action": "release", "deliveries": released},
                )
        except Exception:  # the lease returns them anyway
            log.warning("could not hand back in-flight deliveries", exc_info=True)


class Expander(Task):
    """Plans the rest of changes to many readers (`service.expand_fanout`), a chunk per
    transaction, waking the worker after each; looks at once when woken (`wake`), else
    every `poll`. Runs in every replica: each claims a different fan-out, and one whose
    expander died is taken over when its lease runs out."""

    name = "fan-out expander"

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        on_chunk: Callable[[], None],
        poll: timedelta = timedelta(seconds=1),
        lease: timedelta = timedelta(seconds=15),
    ) -> None:
        super().__init__()
        self.store, self.clock, self.on_chunk = store, clock, on_chunk
        self.poll, self.lease = poll, lease
        self.wake = asyncio.Event()
        self.worker = f"expander-{uuid.uuid4().hex[:8]}"
        #: Planning a fan-out now; deliveries planned by chunks since start (``/healthz``).
        self.busy = False
        self.planned = 0

    async def start(self, tasks: Tasks) -> None:
        self.task = tasks.create_task(self._run, name="fanout-expander")

    async def _run(self) -> None:
        # The database away: said once, until a pass works again.
        trouble: Trouble[datetime] = Trouble(log)
        while not self.quit.is_set():
            self.wake.clear()
            self.busy = True
            try:
                done = await service.expand_fanout(
                    self.store,
                    worker=self.worker,
                    clock=self.clock,
                    lease=self.lease,
                    on_chunk=self._chunk,
                    stop=self.quit,
                )
                trouble.recovered(now=self.clock())
            except Exception as exc:  # the database is away: try again at the next poll
                trouble.failed(
                    "cannot plan fan-outs (%s); retrying every %ss",
                    type(exc).__name__,
                    self.poll.total_seconds(),
                    now=self.clock(),
                    exc_info=not is_outage(exc),
                )
                done = None
            finally:
                self.busy = False
            if done is None:
                await wait_any(self.wake, self.quit, timeout=self.poll.total_seconds())

    def _chunk(self, count: int) -> None:
        self.planned += count
        self.on_chunk()

    async def stop(self) -> None:
        await self._finish()


class OutboxListener(Task):
    """Deliveries queued by another replica (or the CLI) wake this worker at once."""

    name = "outbox listener"

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        super().__init__()
        self.store, self.wake = store, wake

    async def start(self, tasks: Tasks) -> None:
        self.task = tasks.create_task(
            lambda: self.store.listen_outbox(self.wake, self.quit), name="outbox-listen"
        )

    async def stop(self) -> None:
        await self._finish()


class LeadershipLoop(Task):
    """Renews (or tries to take) the scheduler lease; stopping hands it over at once."""

    name = "leadership"

    def __init__(self, leadership: Leadership, *, every: timedelta) -> None:
        super().__init__()
        self.leadership, self.every = leadership, every

    async def start(self, tasks: Tasks) -> None:
        # Leading from the start polls every feed and sets every timer (its callback).
        await self.leadership.tick()
        self.task = tasks.create_task(
            lambda: self.leadership.run(self.quit, every=self.every), name="leadership"
        )

    async def stop(self) -> None:
        await self._finish()
        await self.leadership.release()


class Timers:
    """The scheduler: reminder timers and periodic jobs (feed polls, config watch, prune)."""

    name = "scheduler"

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def start(self, tasks: Tasks) -> None:
        await self.scheduler.start()

    async def stop(self) -> None:
        self.scheduler.shutdown()


class ParserPool:
    """The feed parser processes, as a part of the daemon: started on first use (a parse
    starts one), ended by the daemon's stop like every other part, so no process outlives
    the supervisor. First in the start order, it ends last: after the timers that poll."""

    name = "feed parsers"

    def __init__(self, parsers: Parsers) -> None:
        self.parsers = parsers

    async def start(self, tasks: Tasks) -> None:
        """Nothing to start ahead of the first feed."""

    async def stop(self) -> None:
        # Killing and reaping a process waits on it: not on the loop.
        await asyncio.to_thread(self.parsers.stop)


class HttpServer(Task):
    """The API. If it ends on its own (the port is taken), the daemon stops and `failed`
    says so."""

    name = "http"

    def __init__(
        self,
        serve: Callable[[], Awaitable[None]],
        exit_: Callable[[], None],
        *,
        on_failure: Callable[[], None],
        listen: str,
    ) -> None:
        super().__init__()
        self._serve, self._exit, self.on_failure, self.listen = serve, exit_, on_failure, listen
        self.failed = False

    async def start(self, tasks: Tasks) -> None:
        self.task = tasks.create_task(self._run, name="http")

    async def _run(self) -> None:
        try:
            await self._serve()
        except Exception as exc:
            log.error("HTTP server failed: %s", exc)
            self.failed = True
        except SystemExit:  # uvicorn exits this way when it cannot bind
            self.failed = True
        if not self.quit.is_set():
            if not self.failed:
                log.error("HTTP server stopped (is %s free?)", self.listen)
            self.failed = True
            self.on_failure()

    async def stop(self) -> None:
        self.quit.set()
        self._exit()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
