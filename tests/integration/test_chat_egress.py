"""Chat sends connect only where the address policy allows, for every scheme.

Real sockets on loopback: the allowed service listens on 127.0.0.1 and a refused one on
127.0.0.3 at the same port (only 127.0.0.1/32 is allowed), each counting the TCP
connections it accepts; a resolver of the test's own answers mixed and rebinding records.
The refused side must see no connection at all, not merely no request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest

from notifier.channels.chat import DEFAULT_SCHEMES, ChatChannel, host_problem, url_problem
from notifier.domain.errors import PermanentDeliveryError, TemporaryDeliveryError

ALLOW = (ip_network("127.0.0.1/32"),)
SCHEMES = (*DEFAULT_SCHEMES, "workflow")


@dataclass
class Listener:
    """A TCP server that counts connections and answers every HTTP request with `answer`."""

    host: str
    port: int = 0
    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> Listener:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            self.requests.append(head)
            writer.write(self.answer)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Listener, Listener]]:
    allowed = await Listener("127.0.0.1").start()
    refused = await Listener("127.0.0.3", port=allowed.port).start()
    try:
        yield allowed, refused
    finally:
        await allowed.stop()
        await refused.stop()


class Resolver:
    """Answers from a table; a list of answers per name is used in turn (rebinding)."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): list(seq) for name, seq in answers.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        turns = self.answers[host]
        return turns.pop(0) if len(turns) > 1 else turns[0]


async def send(url: str, resolver: Resolver | None = None) -> None:
    options = {"resolve": resolver} if resolver is not None else {}
    async with ChatChannel(timeout=5, threads=2, allow=ALLOW, schemes=SCHEMES, **options) as chat:
        await chat.send(url, title="Talks", markdown="*moved*", text="moved")


async def test_a_name_with_an_allowed_and_a_refused_address_connects_only_to_the_allowed(
    pair: tuple[Listener, Listener],
) -> None:
    allowed, refused = pair
    resolver = Resolver(mixed_test=[["127.0.0.3", "127.0.0.1"]])
    await send(f"json://mixed.test:{allowed.port}/hook", resolver)
    assert allowed.connections == 1
    assert b"POST /hook" in allowed.requests[0]
    assert refused.connections == 0


async def test_a_rebinding_name_is_resolved_once_and_the_send_uses_what_was_checked(
    pair: tuple[Listener, Listener],
) -> None:
    allowed, refused = pair
    resolver = Resolver(rebind_test=[["127.0.0.1"], ["127.0.0.3"], ["127.0.0.3"]])
    await send(f"json://rebind.test:{allowed.port}/hook", resolver)
    for _ in range(2):  # each send resolves afresh, once: now to a refused address
        with pytest.raises(PermanentDeliveryError, match=r"rebind\.test"):
            await send(f"json://rebind.test:{allowed.port}/hook", resolver)
    assert allowed.connections == 1
    assert refused.connections == 0
    assert resolver.asked == ["rebind.test"] * 3


async def test_a_name_resolving_only_to_refused_addresses_is_a_permanent_refusal(
    pair: tuple[Listener, Listener],
) -> None:
    allowed, refused = pair
    resolver = Resolver(inside_test=[["127.0.0.3", "10.0.0.7"]])
    with pytest.raises(PermanentDeliveryError, match=r"inside\.test .*refused|private"):
        await send(f"json://inside.test:{allowed.port}/hook", resolver)
    with pytest.raises(PermanentDeliveryError, match=r"127\.0\.0\.3"):
        await send(f"json://127.0.0.3:{allowed.port}/hook")
    assert refused.connections == allowed.connections == 0


async def test_a_redirect_is_not_followed_and_its_target_gets_no_connection(
    pair: tuple[Listener, Listener],
) -> None:
    allowed, refused = pair
    allowed.answer = (
        f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.3:{refused.port}/inside\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    with pytest.raises(TemporaryDeliveryError, match="redirect"):
        await send(f"json://127.0.0.1:{allowed.port}/hook")
    assert allowed.connections == 1
    assert refused.connections == 0


async def test_an_environment_proxy_receives_nothing(
    pair: tuple[Listener, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, _ = pair
    proxy = await Listener("127.0.0.1").start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        await send(f"json://127.0.0.1:{allowed.port}/hook")
    finally:
        await proxy.stop()
    assert proxy.connections == 0
    assert allowed.connections == 1


async def test_workflows_hosts_are_checked_when_saved_and_when_sent(
    pair: tuple[Listener, Listener],
) -> None:
    allowed, refused = pair
    url = f"workflows://127.0.0.3:{refused.port}/flow/signature"
    problem = await host_problem(url, ALLOW)
    assert problem is not None
    assert "127.0.0.3" in problem
    with pytest.raises(PermanentDeliveryError, match=r"127\.0\.0\.3"):
        await send(url)
    assert refused.connections == allowed.connections == 0


async def test_threads_outside_a_send_resolve_and_connect_as_usual(
    pair: tuple[Listener, Listener],
) -> None:
    """The hooks stand only in a pinned thread: the event loop still reaches 127.0.0.3."""
    _, refused = pair
    with pytest.raises(PermanentDeliveryError):
        await send(f"json://127.0.0.3:{refused.port}/hook")
    reader, writer = await asyncio.open_connection("127.0.0.3", refused.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.read(12)).startswith(b"HTTP/1.1 200")
    writer.close()
    assert refused.connections == 1


async def test_apprise_log_lines_never_show_a_token_not_even_a_short_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="apprise")
    for url in ("tgram://9:zq/", "ntfys://tk_7secretuser@ntfy.example.org/topic", "tgram://x"):
        url_problem(url, SCHEMES)
    with pytest.raises(TemporaryDeliveryError):
        await send("ntfys://tk_7secretuser@127.0.0.1:9/topic")
    logged = caplog.text
    assert "Unparseable Telegram URL tgram://(hidden)" in logged
    assert "DEBUG" not in logged
    for secret in ("9:zq", "9...q", "tk_7secretuser", "zq"):
        assert secret not in logged
