"""Chat and push channels through Apprise, against real receivers on loopback.

`json://` to a local aiohttp server (the body Apprise posts is checked) and `ntfy://` to a
local server speaking ntfy's publish API (title, message and priority checked); a failing
service is retried on the outbox schedule and then dead-lettered; URLs that cannot be used
are refused when the subscriber is saved. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus, Source, StatusChange, Subscriber
from notifier.domain.outbox import Channel, DeliveryStatus
from notifier.domain.retry import RetryPolicy
from notifier.store import Store
from tests.helpers.outbox import run_until_idle, seed
from tests.integration.conftest import Clock, api_client
from tests.integration.peers import Receiver

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
AUTH = {"Authorization": "Bearer dev-token"}


@dataclass
class Ntfy:
    """A server speaking ntfy's publish API (JSON at the root, priority as a header)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _publish(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.messages.append(
            {**body, "priority": request.headers.get("X-Priority"), "path": request.path}
        )
        return web.json_response({"id": f"m{len(self.messages)}", "topic": body["topic"]})

    async def start(self) -> Ntfy:
        app = web.Application()
        app.router.add_post("/", self._publish)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def ntfy() -> AsyncIterator[Ntfy]:
    server = await Ntfy().start()
    try:
        yield server
    finally:
        await server.stop()


async def change(store: Store, clock: Clock, status: MeetingStatus, **kw: Any) -> None:
    await service.apply_status_change(
        store, StatusChange(meeting_id="talks", status=status, **kw), now=clock()
    )


async def test_json_and_ntfy_readers_get_the_message_in_their_view(
    store: Store, clock: Clock, receiver: Receiver, ntfy: Ntfy, make_worker: MakeWorker
) -> None:
    await seed(
        store,
        clock(),
        Subscriber(
            id="desk",
            notify=(
                f"json://127.0.0.1:{receiver.port}/chat",
                f"ntfy://127.0.0.1:{ntfy.port}/talks?priority=high",
            ),
            timezone="America/New_York",
            source=Source.API,
        ),
    )
    await change(
        store,
        clock,
        MeetingStatus.CLEARED,
        variants={"reason": {"public": "cleared", "participants": "Zq7Secret clearance"}},
    )
    worker = await make_worker()
    await run_until_idle(worker)

    async with store.read() as tx:
        sent = [d for d in await tx.deliveries(limit=100) if d.channel is Channel.NOTIFY]
    # One delivery per URL, each sent, neither naming its URL.
    assert len(sent) == 2
    assert {d.status for d in sent} == {DeliveryStatus.SENT}
    assert len({d.target for d in sent}) == 2
    (hit,) = [h for h in receiver.hits if h.path == "/chat"]
    body = json.loads(hit.body)
    assert body["title"].startswith("Cleared: Talks between the presidents")
    assert body["message"].lower().count("cleared") == 1  # the title says it; once
    assert "11:00" in body["message"]  # 19:00 in Moscow, as the New York reader reads it
    assert "Zq7Secret" not in hit.body.decode()
    assert "**" not in body["message"]  # plain text to a service that shows text
    (message,) = ntfy.messages
    assert message["topic"] == "talks"
    assert message["title"].startswith("Cleared: Talks between the presidents")
    assert message["message"].lower().count("cleared") <= 1
    assert "Zq7Secret" not in json.dumps(message)
    assert message["priority"] == "high"


async def test_a_failing_service_is_retried_then_dead_lettered(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    receiver.default = lambda path: 500
    await seed(
        store,
        clock(),
        Subscriber(
            id="desk", notify=(f"json://127.0.0.1:{receiver.port}/down",), source=Source.API
        ),
    )
    await change(store, clock, MeetingStatus.CLEARED, reason="cleared")
    # The first attempt at once, then two retries 5 s and 30 s later.
    policy = RetryPolicy(
        schedule=(timedelta(0), timedelta(seconds=5), timedelta(seconds=30)), jitter=0
    )
    worker = await make_worker(policy=policy)
    statuses = []
    for step in (0, 5, 30):
        clock.now = clock.now + timedelta(seconds=step)
        await run_until_idle(worker)
        async with store.read() as tx:
            (delivery,) = await tx.deliveries(limit=10)
        statuses.append((delivery.status, delivery.attempts))
    assert statuses == [
        (DeliveryStatus.RETRYING, 1),
        (DeliveryStatus.RETRYING, 2),
        (DeliveryStatus.DEAD, 3),
    ]
    assert len([h for h in receiver.hits if h.path == "/down"]) == 3
    assert "did not take the message" in (delivery.last_error or "")


async def test_urls_that_cannot_be_used_are_refused_when_saved(
    store: Store, database_url: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
    async with api_client(store, clock, database_url=database_url) as client:
        cases = {
            "bogus://user:Zq7Token@x": "scheme 'bogus' is not allowed",
            "tgram://": "Apprise cannot read this tgram:// URL",
            "json://10.0.0.1/x": "host 10.0.0.1 is, or resolves only to, a private",
            "nothing": "not an Apprise URL",
        }
        for url, reason in cases.items():
            answer = await client.post(
                "/v1/subscribers",
                json={"id": "chat-reader", "notify": [url]},
                headers=AUTH,
            )
            assert answer.status_code == 422, (url, answer.text)
            assert f"notify[0]: {reason}" in answer.text, answer.text
            assert "Zq7Token" not in answer.text  # a URL's secret parts are never echoed
        ok = await client.post(
            "/v1/subscribers",
            json={"id": "chat-reader", "notify": ["json://127.0.0.1:9000/chat"]},
            headers=AUTH,
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["notify"] == 1  # counted, never shown
        assert "9000" not in ok.text


async def test_a_refused_host_is_checked_again_before_sending(
    store: Store, clock: Clock, make_worker: MakeWorker
) -> None:
    # Stored past the save-time check (an old row, or a name that resolved elsewhere then).
    await seed(
        store,
        clock(),
        Subscriber(id="desk", notify=("json://10.0.0.1:9/chat",), source=Source.API),
    )
    await change(store, clock, MeetingStatus.CLEARED, reason="cleared")
    await run_until_idle(await make_worker())
    async with store.read() as tx:
        (delivery,) = await tx.deliveries(limit=10)
    assert delivery.status is DeliveryStatus.DEAD
    assert "host 10.0.0.1 is, or resolves only to, a private" in (delivery.last_error or "")
