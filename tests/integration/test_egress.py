"""Outbound requests go only where the address policy allows: real servers on loopback
addresses, the real resolver (/etc/hosts), redirects followed hop by hop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_network

import httpx
import pytest
from aiohttp import web

from notifier.egress import GuardedTransport, check_url
from notifier.settings import SourceConfig
from notifier.sources.poller import SourcePoller
from notifier.store import Store
from tests.integration.conftest import Clock
from tests.integration.peers import free_port

LOOPBACK_ONE = (ip_network("127.0.0.1/32"),)


class Server:
    """A server on one loopback address that serves /feed and redirects /away to `target`."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.hosts_seen: list[str] = []
        self.target = ""
        self._runner: web.AppRunner | None = None

    async def _feed(self, request: web.Request) -> web.Response:
        self.hosts_seen.append(request.headers.get("Host", ""))
        return web.json_response({"meetings": []})

    async def _away(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.target)

    async def start(self, port: int = 0) -> Server:
        app = web.Application()
        app.router.add_get("/feed", self._feed)
        app.router.add_get("/away", self._away)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    first = await Server("127.0.0.1").start()
    # The same port on another loopback address: reachable, but not allowed.
    second = await Server("127.0.0.2").start(first.port)
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


def loopback_name() -> str:
    """A host name that resolves (through /etc/hosts) only to loopback addresses."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            found = {info[4][0] for info in socket.getaddrinfo(name, 80)}
        except OSError:
            continue
        loopback = found and all(a.startswith("127.") or a == "::1" for a in found)
        if loopback and name != "localhost":
            return name
    pytest.skip("no host name other than localhost resolves to loopback here")


async def test_feeds_reach_only_allowed_addresses_even_through_redirects(
    servers: tuple[Server, Server],
) -> None:
    first, _ = servers
    guarded = httpx.AsyncClient(
        transport=GuardedTransport(LOOPBACK_ONE), follow_redirects=True, timeout=5
    )
    async with guarded:
        assert (await guarded.get(f"http://127.0.0.1:{first.port}/feed")).status_code == 200
        for target in (
            f"http://127.0.0.2:{first.port}/feed",  # another loopback address
            f"http://[::ffff:127.0.0.2]:{first.port}/feed",  # the same, IPv4-mapped
            "http://169.254.169.254/latest/meta-data/",  # cloud metadata
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # the same, through NAT64
        ):
            first.target = target
            with pytest.raises(httpx.ConnectError, match="refused target"):
                await guarded.get(f"http://127.0.0.1:{first.port}/away")
    closed = httpx.AsyncClient(transport=GuardedTransport(()), timeout=5)
    async with closed:
        with pytest.raises(httpx.ConnectError, match="refused target"):
            await closed.get(f"http://127.0.0.1:{first.port}/feed")
    assert len(first.hosts_seen) == 1


async def test_a_name_is_judged_by_what_it_resolves_to_and_keeps_its_host_header(
    servers: tuple[Server, Server],
) -> None:
    first, _ = servers
    name = loopback_name()
    url = f"http://{name}:{first.port}/feed"
    problem = await check_url(url, (), what="webhook.url")
    assert problem is not None
    assert "resolves only to" in problem
    assert await check_url(url, (ip_network("127.0.0.0/8"),), what="webhook.url") is None
    assert "cannot resolve" in (
        await check_url("http://no-such-host.invalid/x", (), what="webhook.url") or ""
    )
    client = httpx.AsyncClient(transport=GuardedTransport((ip_network("127.0.0.0/8"),)))
    async with client:
        assert (await client.get(url)).status_code == 200
    assert first.hosts_seen == [f"{name}:{first.port}"]


async def test_a_poll_of_a_refused_feed_is_recorded_as_a_failure(
    store: Store, clock: Clock, servers: tuple[Server, Server]
) -> None:
    first, _ = servers
    config = SourceConfig(
        kind="json", url=f"http://127.0.0.1:{first.port}/away", every=timedelta(seconds=60)
    )  # type: ignore[arg-type]
    first.target = f"http://127.0.0.2:{first.port}/feed"
    client = httpx.AsyncClient(
        transport=GuardedTransport(LOOPBACK_ONE), follow_redirects=True, timeout=5
    )
    async with client:
        result = await SourcePoller(store, config, client, clock=clock).poll()
    assert result.outcome == "failed"
    async with store.read() as tx:
        state = await tx.source_state(str(config.url))
    assert "refused target" in (state.last_error or "")
    assert first.hosts_seen == []
