"""The guarded HTTP server in process (real uvicorn on a free port, configured as the
daemon configures it): the connection cap evicts idle connections first and refuses with
503 only when every connection is busy; a kept-alive connection gets the head timeout
again for its next request."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from notifier.store import Store
from tests.integration.conftest import Clock
from tests.integration.peers import SmtpServer
from tests.integration.test_public_limits import served

# Seconds matter here (a 503 "at once", a 1 s head timeout): beside three other test
# processes on two cores the eight slow requests may not all be in flight in time.
pytestmark = pytest.mark.serial

CAP = {"max_connections": 8, "head_timeout": "1s", "keep_alive": "5s"}


def port_of(client: httpx.AsyncClient) -> int:
    port = client.base_url.port
    assert port is not None
    return port


async def eof_within(reader: asyncio.StreamReader, seconds: float) -> float | None:
    """Seconds until the server closed the connection, None if it did not within."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65_536):
                pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return time.monotonic() - began


async def test_beyond_the_cap_the_oldest_idle_connection_makes_room(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> None:
    async with served(store, clock, smtp_server, database_url=database_url, http=CAP) as client:
        port = port_of(client)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        await asyncio.sleep(0.1)  # all eight accepted
        assert (await client.get("/healthz")).status_code == 200
        # The first one opened was closed at once for it, long before its head timeout.
        closed = await eof_within(idle[0][0], 0.5)
        assert closed is not None
        for _, writer in idle:
            writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_answered_503_at_once(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> None:
    async with served(
        store, clock, smtp_server, database_url=database_url, http=CAP, ready_after=1.5
    ) as client:
        port = port_of(client)
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as busy:
            slow = [asyncio.ensure_future(busy.get("/readyz")) for _ in range(8)]
            try:
                await asyncio.sleep(0.4)  # eight requests in flight, eight connections held
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                began = time.monotonic()
                answer = await asyncio.wait_for(reader.read(200), 1)
                assert answer.startswith(b"HTTP/1.1 503 "), answer
                assert time.monotonic() - began < 1  # not queued behind the busy ones
                writer.close()
            finally:  # never leave the eight behind for a later test to trip over
                done = await asyncio.gather(*slow, return_exceptions=True)
            assert [getattr(r, "status_code", r) for r in done] == [200] * 8


async def test_a_kept_alive_connection_has_the_head_timeout_for_its_next_request(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> None:
    async with served(store, clock, smtp_server, database_url=database_url, http=CAP) as client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(client))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        # The next request starts and stalls: closed after the head timeout (1 s), not
        # after the keep-alive timeout (5 s), and not never.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = await eof_within(reader, 4)
        assert closed is not None
        assert closed < 3
        writer.close()
