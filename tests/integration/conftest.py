"""Fixtures for delivery tests: real SMTP server, real webhook receiver, a movable clock."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from notifier import service
from notifier.channels.chat import DEFAULT_SCHEMES, ChatChannel
from notifier.channels.email import EmailChannel
from notifier.channels.webhook import WebhookChannel
from notifier.delivery import OutboxWorker, Postman
from notifier.domain.retry import RetryPolicy
from notifier.rendering import Renderer
from notifier.settings import load_settings
from notifier.store import Store
from notifier.web.app import ApiContext, create_app
from tests.integration.peers import Receiver, SmtpServer

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = (ip_network("127.0.0.1/32"),)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(now: datetime) -> Clock:
    return Clock(now)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = await Receiver(secrets=[SECRET, ROTATED]).start()
    try:
        yield hooks
    finally:
        await hooks.stop()


@pytest.fixture
async def make_worker(
    store: Store, clock: Clock, smtp_server: SmtpServer
) -> AsyncIterator[Callable[..., Awaitable[OutboxWorker]]]:
    """Build workers sending to the test peers; their channels close after the test."""
    async with AsyncExitStack() as stack:

        async def make(
            *,
            wait: float = 2.0,
            allow: Any = LOOPBACK,
            policy: RetryPolicy | None = None,
            name: str = "test-worker",
            lease: timedelta = timedelta(minutes=2),
            batch: int = 500,
            real_clock: bool = False,
            parallel: int = 2,
            **options: Any,
        ) -> OutboxWorker:
            webhook = await stack.enter_async_context(WebhookChannel(timeout=wait, allow=allow))
            email = await stack.enter_async_context(
                EmailChannel(host="127.0.0.1", port=smtp_server.port, timeout=5, pool_size=4)
            )
            chat = await stack.enter_async_context(
                ChatChannel(timeout=wait, threads=8, allow=allow, schemes=DEFAULT_SCHEMES)
            )
            postman = Postman(
                renderer=Renderer(),
                email=email,
                webhook=webhook,
                chat=chat,
                sender="Notifier <notifier@example.org>",
                public_url="http://127.0.0.1:8080",
                link_key="test-key",
            )
            return OutboxWorker(
                store,
                postman,
                policy=policy or RetryPolicy(jitter=0),
                # Claims expire by the clock: a test of leases needs one that moves.
                clock=(lambda: datetime.now(UTC)) if real_clock else clock,
                parallel=parallel,
                **options,
                name=name,
                lease=lease,
                batch=batch,
                rng=lambda: 0.5,
            )

        yield make


@asynccontextmanager
async def api_client(
    store: Store, clock: Clock, postman: Postman | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over ASGI, on the shipped config with `overrides`, reconciled into
    `store` first; `postman` sends what the public pages send (confirmations)."""
    settings = load_settings(ROOT / "config" / "notifier.toml", **overrides)
    await service.reconcile(store, settings, now=clock())

    async def ready() -> dict[str, Any]:
        return {"database": True, "scheduler": True, "worker": True}

    app = create_app(
        ApiContext(
            store=store,
            settings=settings,
            clock=clock,
            link_key="k",
            health=lambda: {"uptime_seconds": 1.0},
            ready=ready,
            postman=postman,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier.test") as client:
        yield client


@pytest.fixture
async def api(store: Store, database_url: str, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(
        store, clock, database_url=database_url, api={"max_body": 2048, "rate_per_minute": 1000}
    ) as client:
        yield client


@dataclass
class Feed:
    """An HTTP server whose one document a test rewrites; honours If-None-Match."""

    body: bytes = b""
    content_type: str = "text/calendar"
    status: int = 200
    etags: bool = True
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Send the body in chunks without a Content-Length.
    chunked: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status)
        tag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if self.etags and request.headers.get("If-None-Match") == tag:
            return web.Response(status=304)
        headers = {"ETag": tag} if self.etags else {}
        if self.chunked:
            response = web.StreamResponse(headers={"Content-Type": self.content_type})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(self.body), 1024):
                await response.write(self.body[start : start + 1024])
            await response.write_eof()
            return response
        return web.Response(body=self.body, content_type=self.content_type, headers=headers)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed"


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    served = Feed()
    app = web.Application()
    app.router.add_get("/feed", served.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as opened:
        yield opened


# -- the storage port, run whole on both backends -------------------------------------------

#: Which port methods the integration suites called, per backend (recorded below).
PORT_CALLS: dict[str, set[str]] = {"sqlite": set(), "postgresql": set()}


def port_methods() -> set[str]:
    """Every method of the storage port (`notifier.store.port`)."""
    from notifier.store import port

    return {
        name
        for protocol in (port.TransactionPort,)
        for name in dir(protocol)
        if not name.startswith("_") and callable(getattr(protocol, name))
    }


def _record_port_calls() -> None:
    """Wrap every port method of the SQLAlchemy `Transaction` to note which backend ran it:
    the storage suites together are the port's contract suite (`test_zz_port.py`)."""
    from notifier.store.queries import Transaction

    for name in port_methods():
        original = getattr(Transaction, name)
        if not inspect.iscoroutinefunction(original):
            continue

        @functools.wraps(original)
        async def recorded(
            self: Transaction, *args: Any, __original: Any = original, __name: str = name, **kw: Any
        ) -> Any:
            PORT_CALLS.setdefault(self.connection.dialect.name, set()).add(__name)
            return await __original(self, *args, **kw)

        setattr(Transaction, name, recorded)


_record_port_calls()
