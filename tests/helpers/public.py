"""What the public-face suites share: the site on a test store, its form posts and links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from email import message_from_bytes, policy

import httpx
import pytest

from notifier.channels.email import EmailChannel
from notifier.delivery import Postman
from notifier.rendering import Renderer
from notifier.store import Store
from tests.integration.conftest import Clock, api_client
from tests.integration.peers import SmtpServer

TALKS = "moscow-tskhinvali-talks"


#: The postman each test's site sends with, by store (a test sends news with it too).
POSTMEN: dict[int, Postman] = {}


@pytest.fixture
async def site(
    store: Store, database_url: str, clock: Clock, smtp_server: SmtpServer
) -> AsyncIterator[httpx.AsyncClient]:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
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
        POSTMEN[id(store)] = postman
        client = await stack.enter_async_context(
            api_client(
                store,
                clock,
                postman=postman,
                database_url=database_url,
                public={"enabled": True, "per_client_per_hour": 50},
            )
        )
        yield client


def links(smtp_server: SmtpServer, address: str) -> list[str]:
    """The links in the emails `address` received, in order."""
    found = []
    for rcpts, raw in smtp_server.box.raw:
        if rcpts == [address]:
            body = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
            assert body is not None
            found.extend(re.findall(r"http://\S+", body.get_content()))
    return found


async def form(client: httpx.AsyncClient, path: str) -> str:
    """Open a page with a form; the CSRF token it carries (its cookie is kept)."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)
