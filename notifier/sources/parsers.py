"""Parser processes: a feed's body is parsed off the daemon, within a time and memory budget.

A parse is CPU-bound and runs on a third party's bytes: it runs in a process of its own
(the daemon's event loop and interpreter lock stay free for the API and the outbox), at
most `Parsers.size` at once. A parse that takes longer than its time budget has its
process killed; a parse that needs more memory than its budget (a data-size limit set on
the process once it is ready, its own memory plus the budget) fails with a MemoryError,
or kills its process. Either way that feed alone is refused with the reason (`FeedError`)
and the next parse gets a fresh process: one hostile feed holds up no other beyond the
budget, and only while every other parser is busy.

A parser is ``python -c`` importing this module alone, talking over a socket pair, not a
multiprocessing child: spawn would import the daemon's main module (the whole CLI) into
each parser, ~95 MiB where this is ~40.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from notifier.configfile import SourceConfig
from notifier.sources.feed import FeedItem, clean_item, snapshot
from notifier.sources.ics import FeedError, ParsedFeed, parse_ics
from notifier.sources.jsonfeed import parse_json_feed

#: Items applied (and progress committed) per transaction.
CHUNK = 200
#: Seconds a parse may take by default (`feeds.parse_timeout`).
DEFAULT_TIMEOUT = 60.0
#: MiB a parse may take by default (`feeds.parse_memory_mib`).
DEFAULT_MEMORY_MIB = 1024
#: Parses at once by default (`feeds.parsers`).
DEFAULT_SIZE = 2
#: The exit status of a parser process that ran out of memory answering.
_OUT_OF_MEMORY = 86


def parse_feed(
    config: SourceConfig,
    body: bytes,
    content_type: str | None,
    now: datetime,
    default_timezone: str,
) -> ParsedFeed:
    """Parse and clean a feed's body: the CPU-heavy part of a poll, pure."""
    if config.kind == "ics":
        parsed = parse_ics(
            body,
            now=now,
            default_timezone=default_timezone,
            horizon=config.horizon,
            content_type=content_type,
        )
    else:
        parsed = parse_json_feed(body, fields=config.fields, default_timezone=default_timezone)
    cleaned: list[FeedItem] = []
    for item in parsed.items:
        safe, warning = clean_item(item)
        cleaned.append(safe)
        if warning:
            parsed.notes.append(f"{item.ident[:120]}: {warning}")
    parsed.items = cleaned
    return parsed


@dataclass(kw_only=True)
class Parsed:
    """A parsed feed as the parser process hands it over: the items in pickled chunks of
    `CHUNK` (item, snapshot) pairs, unpickled one at a time as they are applied."""

    feed: ParsedFeed
    keys: list[str]
    batches: list[bytes]


def parse_in_batches(
    config: SourceConfig,
    body: bytes,
    content_type: str | None,
    now: datetime,
    default_timezone: str,
) -> Parsed:
    """`parse_feed`, its items made into `Parsed` batches (run in the parser process)."""
    feed = parse_feed(config, body, content_type, now, default_timezone)
    pairs = [(item, snapshot(item)) for item in feed.items]
    batches = [pickle.dumps(pairs[i : i + CHUNK]) for i in range(0, len(pairs), CHUNK)]
    keys = [item.ident for item in feed.items]
    feed.items = []
    return Parsed(feed=feed, keys=keys, batches=batches)


def _watch_parent(parent: int) -> None:
    """In the parser process: exit as soon as the daemon that started it is gone. A daemon
    killed with SIGKILL cannot stop its parser, and an orphan would hold its memory and its
    stdout and stderr (a supervisor waiting for them to close would wait forever)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _data_size() -> int:
    """This process's data size in bytes (what RLIMIT_DATA limits), 0 where unknown."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def serve(fd: int, parent: int, budget: int) -> None:
    """The parser process: parse each request read from socket `fd`, answer ``(outcome,
    value)``, until the socket closes; a parse may take `budget` bytes of memory. After a
    MemoryError it answers and exits (a fresh process takes over)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon stops it, not a Ctrl-C
    connection = Connection(fd)
    _watch_parent(parent)
    # RLIMIT_DATA counts the heap and private writable mappings, what a parse grows;
    # RLIMIT_AS would count the address space reserved for threads' malloc arenas too.
    # Set once ready: the budget is the parse's, not the interpreter's and its imports'.
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _data_size() + budget
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        answer: tuple[str, Any]
        try:
            answer = ("parsed", parse_in_batches(*request))
        except MemoryError:
            answer = ("memory", None)
        except FeedError as exc:
            answer = ("refused", str(exc))
        except Exception as exc:  # a bug's shape in a third party's bytes: this feed fails
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        del request
        try:
            connection.send(answer)
        except MemoryError:
            os._exit(_OUT_OF_MEMORY)
        if answer[0] == "memory":
            os._exit(0)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection


class Parsers:
    """Up to `size` parser processes, started on first use, each parse within `timeout`
    seconds and `memory_mib` MiB (beyond the ~40 MiB the parser has before it parses)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        size: int = DEFAULT_SIZE,
    ) -> None:
        self.timeout = timeout
        self.memory_mib = memory_mib
        self.size = size
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._busy = 0
        self._freed: asyncio.Event | None = None
        _RUNNING.add(self)

    async def parse(
        self,
        config: SourceConfig,
        body: bytes,
        content_type: str | None,
        now: datetime,
        default_timezone: str,
    ) -> Parsed:
        """`parse_in_batches` in a parser process (waiting for one to be free first; the
        wait is not part of the budget). Raises `FeedError` with the reason when the feed
        cannot be read or the parse goes over its budget."""
        async with self._turn():
            try:
                worker = self._idle.pop() if self._idle else await asyncio.to_thread(self._start)
            except OSError as exc:
                raise FeedError(f"no parser process could be started: {exc}") from None
            try:
                outcome, value = await self._run(
                    worker, (config, body, content_type, now, default_timezone)
                )
            except BaseException:  # over time, dead, or the poll cancelled: a fresh one next
                await asyncio.to_thread(self._end, worker)
                raise
            if outcome == "memory":  # it exits after telling: it may be in pieces
                await asyncio.to_thread(self._end, worker)
                raise FeedError(self._over_memory())
            self._idle.append(worker)
        if outcome == "refused":
            raise FeedError(value)
        if outcome != "parsed":
            raise FeedError(f"the feed could not be read ({value})")
        assert isinstance(value, Parsed)
        return value

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One of `size` parses at once."""
        while self._busy >= self.size:
            if self._freed is None:
                self._freed = asyncio.Event()
            await self._freed.wait()
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            freed, self._freed = self._freed, None
            if freed is not None:
                freed.set()  # every waiter looks again

    async def _run(self, worker: _Worker, request: tuple[Any, ...]) -> tuple[str, Any]:
        """Send `request` to `worker`, wait at most `timeout` for its answer."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(worker.connection.send, request)
        except (OSError, ValueError):
            raise await asyncio.to_thread(self._died, worker) from None
        answered = loop.create_future()
        fd = worker.connection.fileno()

        def readable() -> None:
            if not answered.done():
                answered.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(answered, self.timeout)
        except TimeoutError:
            raise FeedError(
                f"parsing took longer than {self.timeout:g} s (feeds.parse_timeout); feed refused"
            ) from None
        finally:
            loop.remove_reader(fd)
        try:
            answer: tuple[str, Any] = await asyncio.to_thread(worker.connection.recv)
        except (EOFError, OSError):
            raise await asyncio.to_thread(self._died, worker) from None
        return answer

    def _over_memory(self) -> str:
        return (
            f"the parser needed more than {self.memory_mib:,} MiB (feeds.parse_memory_mib) "
            "for this feed; feed refused"
        )

    def _died(self, worker: _Worker) -> FeedError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)
        code = worker.process.returncode
        if code == _OUT_OF_MEMORY:
            return FeedError(self._over_memory())
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return FeedError(f"the parser process died reading this feed ({how}); feed refused")

    def _start(self) -> _Worker:
        ours, theirs = socket.socketpair()
        budget = self.memory_mib * 1024 * 1024
        code = (
            "from notifier.sources.parsers import serve; "
            f"serve({theirs.fileno()}, {os.getpid()}, {budget})"
        )
        # The daemon's own import path, as multiprocessing would hand it over.
        path = os.pathsep.join(p for p in sys.path if p)
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env={**os.environ, "PYTHONPATH": path},
        )
        theirs.close()
        worker = _Worker(process=process, connection=Connection(ours.detach()))
        self._all.add(worker)
        return worker

    def _end(self, worker: _Worker) -> None:
        self._all.discard(worker)
        worker.connection.close()
        if worker.process.poll() is None:
            worker.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)

    def stop(self) -> None:
        """End every parser process (at daemon shutdown); a later parse starts new ones."""
        for worker in list(self._all):
            self._end(worker)
        self._idle.clear()


#: Every `Parsers`, stopped when the interpreter exits (an idle parser waits for work).
_RUNNING: weakref.WeakSet[Parsers] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for parsers in list(_RUNNING):
        parsers.stop()


__all__ = ["CHUNK", "Parsed", "Parsers", "parse_feed", "parse_in_batches"]
