"""The HTTP server's own defences against slow and idle clients.

uvicorn (httptools) as shipped waits for ever for a request head, keeps every byte of an
unfinished header in memory, and accepts connections until the process runs out of file
descriptors, at which point the outbox cannot open a socket either. `guarded_protocol`
makes a subclass of uvicorn's `HttpToolsProtocol` that, per connection:

- closes it when a complete request head has not arrived `head_timeout` after the
  connection opened (or after the first byte of a later request on a kept-alive one);
- answers 431 and closes when a request head grows past `max_header_bytes`;

and, across connections (one `Gate` per server):

- holds at most `cap` connections: a new one beyond it first evicts the oldest connection
  still waiting for its request head (an idle or half-sent one); if every connection is
  busy with a request, the new one is answered 503 and closed at once.

`connection_budget` says how many connections and how long an accept backlog a descriptor
limit allows once the outbox's own descriptors are set aside. Only the daemon imports this
module (it imports uvicorn).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from prometheus_client import Counter
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from notifier.metrics import REGISTRY
from notifier.settings import Settings

log = logging.getLogger("notifier")

CLOSED = Counter(
    "notifier_http_connections_closed",
    "HTTP connections the server closed itself, by reason (head_timeout, "
    "header_too_large, evicted, refused).",
    ["reason"],
    registry=REGISTRY,
)

#: Descriptors kept for everything but HTTP connections besides the outbox's own sockets:
#: the database pool, the listening socket, the feed parser's pipes, logs, the event loop.
BASE_RESERVE = 64


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What a descriptor limit allows the HTTP side."""

    #: Connections held at once.
    connections: int
    #: The listening socket's backlog, which is also how many connections asyncio may
    #: accept in one go before any is closed.
    backlog: int


def connection_budget(
    *, descriptors: int, reserve: int, max_connections: int, backlog: int
) -> Budget:
    """The connection cap and accept backlog under a soft descriptor limit `descriptors`
    with `reserve` descriptors kept for the outbox and the rest of the daemon.

    A burst of accepts can briefly hold a couple of backlogs beyond the cap before they are
    closed, so both fit within what is left after the reserve; never below 8 of each (a
    limit that small is logged by the caller).
    """
    room = max(0, descriptors - reserve)
    backlog = max(8, min(backlog, room // 4))
    connections = max(8, min(max_connections, room - 2 * backlog))
    return Budget(connections=connections, backlog=backlog)


@dataclass(kw_only=True)
class Gate:
    """The limits every connection of one server shares, and the connections it holds
    (oldest first)."""

    cap: int
    head_timeout: float
    max_header_bytes: int
    live: dict[GuardedProtocol, None] = field(default_factory=dict)

    def admit(self, connection: GuardedProtocol) -> bool:
        """Hold `connection`, evicting the oldest one still waiting for its request head
        when the cap is reached; False when every held connection is busy (refuse it)."""
        if len(self.live) >= self.cap:
            oldest = next((c for c in self.live if c.idle), None)
            if oldest is None:
                return False
            CLOSED.labels("evicted").inc()
            oldest.drop()
        self.live[connection] = None
        return True

    def release(self, connection: GuardedProtocol) -> None:
        """`connection` has closed."""
        self.live.pop(connection, None)


_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\n"
    b"Request header fields too large"
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
    b"content-length: 24\r\nconnection: close\r\n\r\n"
    b"Too many connections now"
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a `Gate` (see the module docstring)."""

    gate: Gate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Between requests, or inside a request head not yet complete.
        self.awaiting_head = True
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """No request is being served: between requests, or inside an unfinished head."""
        return self.awaiting_head and (self.cycle is None or self.cycle.response_complete)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.gate.admit(self):
            CLOSED.labels("refused").inc()
            transport.write(_BUSY)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.gate.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.awaiting_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.awaiting_head and self.head_bytes > self.gate.max_header_bytes:
            # One read (at most 256 KiB) past the limit is all a head may hold in memory.
            CLOSED.labels("header_too_large").inc()
            self.transport.write(_TOO_LARGE)
            self.drop()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_timer is None:  # the first byte of a later request on this connection
            self._arm()

    def on_headers_complete(self) -> None:
        self.awaiting_head = False
        self.head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.awaiting_head = True

    def drop(self) -> None:
        """Close this connection now (its request, if any, is abandoned)."""
        self._disarm()
        self.gate.release(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self.head_timer = self.loop.call_later(self.gate.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.awaiting_head:
            CLOSED.labels("head_timeout").inc()
            self.drop()


def guarded_protocol(gate: Gate) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` whose connections share `gate`."""
    return type("GuardedHttpToolsProtocol", (GuardedProtocol,), {"gate": gate})


def http_budget(settings: Settings, descriptors: int) -> Budget:
    """How many HTTP connections the descriptor limit allows once the outbox's own
    sockets (webhooks in flight, SMTP connections, notify threads) are set aside."""
    delivery = settings.delivery
    reserve = (
        delivery.concurrency + delivery.smtp_connections + settings.notify.threads + BASE_RESERVE
    )
    budget = connection_budget(
        descriptors=descriptors,
        reserve=reserve,
        max_connections=settings.http.max_connections,
        backlog=settings.http.backlog,
    )
    if budget.connections < settings.http.max_connections:
        log.warning(
            "HTTP connections held to %d (http.max_connections is %d): the descriptor limit "
            "is %d and %d are kept for the outbox and the database",
            budget.connections,
            settings.http.max_connections,
            descriptors,
            reserve,
            extra={"action": "http_budget"},
        )
    return budget


def server_config(app: ASGIApp, settings: Settings, *, descriptors: int) -> uvicorn.Config:
    """uvicorn's configuration for `app` under ``[http]``: the guarded protocol, a cap
    and backlog that fit the descriptor limit, and forwarded headers believed only from
    ``http.trusted_proxies`` (uvicorn would believe them from 127.0.0.1 by default)."""
    limits = settings.http
    budget = http_budget(settings, descriptors)
    gate = Gate(
        cap=budget.connections,
        head_timeout=limits.head_timeout.total_seconds(),
        max_header_bytes=limits.max_header_bytes,
    )
    host, _, port = settings.listen.rpartition(":")
    return uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=int(port),
        log_level="warning",
        http=guarded_protocol(gate),
        lifespan="off",
        access_log=False,
        timeout_keep_alive=max(1, round(limits.keep_alive.total_seconds())),
        backlog=budget.backlog,
        proxy_headers=bool(limits.trusted_proxies),
        forwarded_allow_ips=list(limits.trusted_proxies),
    )
