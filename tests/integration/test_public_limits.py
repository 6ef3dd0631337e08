"""The public face's limits under pressure, on SQLite and PostgreSQL: concurrent requests
for one address, forged forwarding headers, sub-addresses; every answer a page."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import uvicorn

from notifier import service
from notifier.api.server import server_config
from notifier.channels.email import EmailChannel
from notifier.delivery import Postman
from notifier.rendering import Renderer
from notifier.settings import load_settings
from notifier.store import Store
from notifier.web.app import ApiContext, create_app
from tests.helpers.public import TALKS, form, links
from tests.integration.conftest import ROOT, Clock
from tests.integration.peers import SmtpServer


async def test_concurrent_requests_for_one_new_address_send_at_most_the_daily_limit(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")

    async def ask() -> httpx.Response:
        return await site.post(
            "/subscribe", data={"csrf": csrf, "email": "race@example.org", "meeting": TALKS}
        )

    # 31 at once for an address nobody has asked for yet: they race to create it.
    answers = await asyncio.gather(*(ask() for _ in range(31)))
    assert {a.status_code for a in answers} == {202}, [a.text[:200] for a in answers]
    assert all(a.headers["content-type"].startswith("text/html") for a in answers)
    assert all("Check your mail" in a.text for a in answers)
    assert len(links(smtp_server, "race@example.org")) == 3
    # Then more at once (within the per-client limit of the site): the limit holds.
    answers = await asyncio.gather(*(ask() for _ in range(15)))
    assert {a.status_code for a in answers} == {202}
    assert len(links(smtp_server, "race@example.org")) == 3


@asynccontextmanager
async def served(
    store: Store,
    clock: Clock,
    smtp_server: SmtpServer,
    *,
    ready_after: float = 0.0,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app behind the real uvicorn, configured as the daemon configures it
    (`server_config`), on a free port of 127.0.0.1; a client for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    settings = load_settings(
        ROOT / "config" / "notifier.toml", listen=f"127.0.0.1:{port}", **overrides
    )
    await service.reconcile(store, settings, now=clock())
    async with AsyncExitStack() as stack:
        email = await stack.enter_async_context(
            EmailChannel(host="127.0.0.1", port=smtp_server.port, timeout=5, pool_size=1)
        )
        postman = Postman(
            renderer=Renderer(),
            email=email,
            webhook=None,
            sender="Notifier <notifier@example.org>",
            public_url="http://127.0.0.1:8080",
            link_key="k",
        )

        async def ready() -> dict[str, Any]:
            await asyncio.sleep(ready_after)  # a request that keeps its connection busy
            return {"database": True}

        app = create_app(
            ApiContext(
                store=store,
                settings=settings,
                clock=clock,
                link_key="k",
                health=lambda: {},
                ready=ready,
                postman=postman,
            )
        )
        server = uvicorn.Server(server_config(app, settings, descriptors=4096))
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                yield client
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def _subscribe_from(
    client: httpx.AsyncClient, csrf: str, email: str, forwarded: str
) -> httpx.Response:
    return await client.post(
        "/subscribe",
        data={"csrf": csrf, "email": email, "meeting": TALKS},
        headers={"X-Forwarded-For": forwarded},
    )


async def test_a_client_cannot_pick_its_address_with_x_forwarded_for(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> None:
    public = {"enabled": True, "per_client_per_hour": 10}
    async with served(
        store, clock, smtp_server, database_url=database_url, public=public
    ) as client:
        csrf = await form(client, f"/meetings/{TALKS}")
        codes = [
            (await _subscribe_from(client, csrf, f"x{n}@example.org", f"203.0.113.{n}")).status_code
            for n in range(12)
        ]
    assert codes == [202] * 10 + [429] * 2


async def test_a_configured_proxy_is_believed(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> None:
    public = {"enabled": True, "per_client_per_hour": 10}
    async with served(
        store,
        clock,
        smtp_server,
        database_url=database_url,
        public=public,
        http={"trusted_proxies": ["127.0.0.0/8"]},
    ) as client:
        csrf = await form(client, f"/meetings/{TALKS}")
        codes = [
            (await _subscribe_from(client, csrf, f"y{n}@example.org", f"203.0.113.{n}")).status_code
            for n in range(12)
        ]
    assert codes == [202] * 12  # each forwarded client has its own count


async def test_sub_addresses_share_their_mailbox_limit(
    site: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    csrf = await form(site, f"/meetings/{TALKS}")
    for n in range(12):
        email = f"Bomb+{n}@Example.org" if n % 2 else f"bomb+{n}@example.org"
        answer = await site.post(
            "/subscribe", data={"csrf": csrf, "email": email, "meeting": TALKS}
        )
        assert answer.status_code == 202
    sent = [raw for rcpts, raw in smtp_server.box.raw if rcpts[0].lower().startswith("bomb")]
    assert len(sent) == 3
