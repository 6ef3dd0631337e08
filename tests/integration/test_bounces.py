"""Failures are classified by whose fault they are: our SMTP trouble pauses the channel and
never dead-letters; a recipient's hard bounce suppresses that address until cleared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import Channel, DeliveryFilter, DeliveryStatus, Replay
from notifier.domain.retry import RetryPolicy
from notifier.store import Store
from tests.helpers.api import AUTH
from tests.helpers.outbox import change, hook, mail, outbox, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver, SmtpServer

MakeWorker = Callable[..., Awaitable[OutboxWorker]]


async def test_a_refused_sender_pauses_email_and_dead_letters_nothing(
    store: Store, clock: Clock, now: datetime, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    await seed(store, now, mail("a", "a@example.org"), mail("b", "b@example.org"))
    smtp_server.box.mail_script = ["550 5.7.1 sender not allowed"] * 30
    await change(store, clock, MeetingStatus.CLEARED)
    worker = await make_worker()
    for _ in range(12):  # far more rounds than the retry schedule has attempts
        await run_until_idle(worker)
        clock.advance(timedelta(minutes=10))
        worker.postman.email._paused_until = 0.0  # type: ignore[union-attr]  # (time moves)
    stored = await outbox(store)
    for reader in ("a", "b"):
        delivery = stored[(reader, "email")]
        assert delivery.status is DeliveryStatus.RETRYING
        assert delivery.attempts == 0, "our fault used up the reader's attempts"
        assert "sender" in (delivery.last_error or "")
    smtp_server.box.mail_script = []
    await run_until_idle(worker)
    assert {d.status for d in (await outbox(store)).values()} == {DeliveryStatus.SENT}


async def test_a_hard_bounce_suppresses_the_address_until_cleared(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    api: httpx.AsyncClient,
) -> None:
    await seed(store, now, mail("gone", "gone@example.org"), mail("ok", "ok@example.org"))
    smtp_server.box.rcpt_script["gone@example.org"] = ["550 5.1.1 no such user"]
    await change(store, clock, MeetingStatus.CLEARED)
    worker = await make_worker()
    await run_until_idle(worker)
    first = (await outbox(store))[("gone", "email")]
    assert first.status is DeliveryStatus.DEAD
    async with store.read() as tx:
        assert await tx.suppressed(["Gone@Example.org"]) == {"gone@example.org"}

    # Later messages to it are recorded as suppressed, and never reach the server.
    asked = len(smtp_server.box.rcpts_asked)
    await change(store, clock, MeetingStatus.CANCELLED, reason="off")
    await run_until_idle(worker)
    async with store.read() as tx:
        later = [
            d
            for d in await tx.deliveries(limit=100)
            if d.subscriber_id == "gone" and d.kind.value == "meeting.cancelled"
        ]
    assert [d.status for d in later] == [DeliveryStatus.SUPPRESSED]
    assert "gone@example.org" not in smtp_server.box.rcpts_asked[asked:]
    assert "ok@example.org" in smtp_server.box.rcpts_asked[asked:]

    listed = await api.get("/v1/suppressions", headers=AUTH)
    assert [s["address"] for s in listed.json()] == ["gone@example.org"]
    assert (await api.delete("/v1/suppressions/gone@example.org", headers=AUTH)).status_code == 204
    assert (await api.delete("/v1/suppressions/gone@example.org", headers=AUTH)).status_code == 404
    replayed = await service.replay(store, Replay(status=DeliveryFilter.SUPPRESSED), now=clock())
    assert len(replayed) == 1
    await run_until_idle(worker)
    assert smtp_server.box.to("gone@example.org")


async def test_a_webhook_failing_for_days_is_disabled_and_the_operator_told(
    store: Store,
    clock: Clock,
    now: datetime,
    receiver: Receiver,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    await seed(store, now, hook("flaky", receiver, "/flaky"), hook("dead-end", receiver, "/dead"))
    receiver.default = lambda path: 503
    policy = RetryPolicy(schedule=(timedelta(0),) + (timedelta(hours=6),) * 20, jitter=0)
    worker = await make_worker(
        policy=policy, disable_after=timedelta(days=1), operator_email="ops@example.org"
    )
    await change(store, clock, MeetingStatus.CLEARED)
    await run_until_idle(worker)
    for hour in range(6, 25, 6):
        clock.advance(timedelta(hours=6))
        if hour == 12:  # /flaky answers once: its run of failures starts again
            receiver.default = lambda path: 204 if path == "/flaky" else 503
            await change(store, clock, MeetingStatus.POSTPONED, reason="again")
        elif hour == 18:
            receiver.default = lambda path: 503
        await run_until_idle(worker)
    async with store.read() as tx:
        contacts = await tx.contacts(["flaky", "dead-end"])
    assert contacts["dead-end"].webhook is None, "failing for a day: disabled"
    assert contacts["flaky"].webhook is not None, "a success in the day resets the clock"
    told = smtp_server.box.to("ops@example.org")
    assert len(told) == 1
    assert "dead-end" in str(told[0]["Subject"])
    assert "notifier subscribers enable dead-end" in told[0].get_content()

    async with store.write() as tx:
        assert await tx.enable_endpoint("dead-end", Channel.WEBHOOK)
        assert not await tx.enable_endpoint("dead-end", Channel.WEBHOOK)
    async with store.read() as tx:
        assert (await tx.contacts(["dead-end"]))["dead-end"].webhook is not None
