"""The outbox end to end: real SMTP server, real webhook receiver, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from ipaddress import ip_address

import pytest

from notifier.delivery import OutboxWorker
from notifier.domain.models import (
    QuietHours,
    Source,
    Subscriber,
    WebhookEndpoint,
)
from notifier.domain.outbox import Channel, Delivery, DeliveryFilter, DeliveryStatus
from notifier.store import Store
from notifier.tokens import read_unsubscribe_token
from tests.helpers.outbox import MOSCOW, S, change, hook, mail, outbox, run_until_idle, seed
from tests.integration.conftest import SECRET, Clock
from tests.integration.peers import Receiver, SmtpServer

MakeWorker = Callable[..., Awaitable[OutboxWorker]]


async def test_each_subscriber_gets_one_message_per_change_in_their_zone_and_language(
    store: Store,
    clock: Clock,
    receiver: Receiver,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    wire = hook("wire", receiver, "/wire", timezone="America/New_York")
    press = mail("press", "press@example.org", timezone="Europe/Moscow", locale="ru", name="Пресса")
    berlin = Subscriber(
        id="berlin",
        email="berlin@example.org",
        webhook=WebhookEndpoint(url=receiver.url("/berlin"), secrets=(SECRET,)),
        timezone="Europe/Berlin",
        source=Source.API,
    )
    elsewhere = mail("elsewhere", "other@example.org", meetings=("another-meeting",))
    await seed(store, clock(), wire, press, berlin, elsewhere)
    worker = await make_worker()

    cleared = await change(store, clock, S.CLEARED, reason="second assessment negative")
    assert cleared.deliveries == 4
    await run_until_idle(worker)
    moved = await change(
        store, clock, S.RESCHEDULED, starts_at=datetime(2026, 3, 2, 21, 0, tzinfo=MOSCOW)
    )
    assert moved.deliveries == 4
    await run_until_idle(worker)

    # Webhooks: signed (the reference library verifies), one per change, in order.
    for path in ("/wire", "/berlin"):
        hits = receiver.verified(path)
        assert [h.verified["type"] for h in hits] == ["meeting.cleared", "meeting.rescheduled"]
        rescheduled = hits[1].verified["data"]
        assert rescheduled["change"]["from"] == "cleared"
        assert rescheduled["change"]["previous_starts_at"] == "2026-03-02T19:00:00+03:00"
        assert rescheduled["change"]["starts_at"] == "2026-03-02T21:00:00+03:00"
        assert rescheduled["sequence"] == 4
    assert len(receiver.hits) == 4  # nothing unsigned, nothing extra

    # Emails: one per change and reader, in the reader's language and zone.
    box = smtp_server.box
    assert box.to("other@example.org") == []
    (first, second) = box.to("press@example.org")
    assert first["Subject"].startswith("Препятствия устранены: Talks between the presidents")
    assert "21:00 МСК, 2 марта 2026" in second.get_body(("plain",)).get_content()
    (_, berlin_moved) = box.to("berlin@example.org")
    text = berlin_moved.get_body(("plain",)).get_content()
    assert "from 17:00 CET, 2 March 2026 to 19:00 CET, 2 March 2026" in text
    deliveries = await outbox(store)
    assert all(d.status is DeliveryStatus.SENT for d in deliveries.values())


async def test_email_headers_thread_unsubscribe_and_carry_the_calendar_update(
    store: Store, clock: Clock, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), mail("press", "press@example.org", name="Press Desk"))
    worker = await make_worker()
    await change(store, clock, S.CLEARED)
    await change(store, clock, S.CANCELLED, reason="called off")
    await run_until_idle(worker)
    cleared, cancelled = smtp_server.box.to("press@example.org")
    ids = {d.kind.value: d.id for d in await _all(store)}
    assert cleared["Message-ID"] == f"<{ids['meeting.cleared']}@example.org>"
    assert cleared["To"] == "Press Desk <press@example.org>"
    assert cleared["References"] == cancelled["References"] == "<meeting.talks@example.org>"
    assert cleared["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = cleared["List-Unsubscribe"].strip().strip("<>")
    assert link.startswith("http://127.0.0.1:8080/unsubscribe/")
    read = read_unsubscribe_token("test-key", link.rsplit("/", 1)[1])
    assert read is not None
    assert (read.subscriber_id, read.channel) == ("press", "email")
    # The same link stands in both bodies.
    assert link in cleared.get_body(("plain",)).get_content()
    assert f'href="{link}"' in cleared.get_body(("html",)).get_content()
    calendar = [p for p in cleared.walk() if p.get_content_type() == "text/calendar"]
    ics = calendar[0].get_content()
    ics = ics if isinstance(ics, str) else ics.decode()
    assert "METHOD:REQUEST" in ics
    assert "SEQUENCE:3" in ics
    assert "UID:talks@example.org" in ics
    cancel_part = next(p for p in cancelled.walk() if p.get_content_type() == "text/calendar")
    assert cancel_part.get_param("method") == "CANCEL"


async def _all(store: Store) -> list[Delivery]:
    async with store.read() as tx:
        return await tx.deliveries(limit=1000)


async def test_a_500_is_retried_on_schedule_with_the_same_webhook_id(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    receiver.script["/wire"] = [500]
    worker = await make_worker()
    await change(store, clock, S.CLEARED)
    await run_until_idle(worker)
    delivery = (await outbox(store))[("wire", "webhook")]
    assert delivery.status is DeliveryStatus.RETRYING
    assert delivery.next_attempt_at == clock() + timedelta(seconds=5)
    assert "HTTP 500" in (delivery.last_error or "")
    async with store.read() as tx:
        failed = await tx.deliveries(status=DeliveryFilter.FAILED)
    assert [d.id for d in failed] == [delivery.id]
    clock.advance(timedelta(seconds=4))
    assert await run_until_idle(worker) == 0  # not due yet
    clock.advance(timedelta(seconds=1))
    assert await run_until_idle(worker) == 1
    assert (await outbox(store))[("wire", "webhook")].status is DeliveryStatus.SENT
    ids = {h.headers["webhook-id"] for h in receiver.hits}
    assert ids == {delivery.id}
    assert len(receiver.hits) == 2
    async with store.read() as tx:
        attempts = await tx.attempts(delivery.id)
    assert [(a["outcome"], a["code"]) for a in attempts] == [("temporary", 500), ("sent", 204)]


async def test_retry_after_is_honoured(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    receiver.script["/wire"] = [(429, {"Retry-After": "120"})]
    await change(store, clock, S.CLEARED)
    await run_until_idle(await make_worker())
    delivery = (await outbox(store))[("wire", "webhook")]
    assert delivery.status is DeliveryStatus.RETRYING
    assert delivery.next_attempt_at == clock() + timedelta(seconds=120)


async def test_410_dead_letters_and_disables_the_endpoint(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    receiver.script["/wire"] = [410]
    worker = await make_worker()
    await change(store, clock, S.CLEARED)
    await run_until_idle(worker)
    assert (await outbox(store))[("wire", "webhook")].status is DeliveryStatus.DEAD
    async with store.read() as tx:
        assert (await tx.subscriber_record("wire")).subscriber.webhook is None  # type: ignore[union-attr]
    later = await change(
        store, clock, S.RESCHEDULED, starts_at=datetime(2026, 3, 3, 19, 0, tzinfo=MOSCOW)
    )
    assert later.deliveries == 0


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (400, DeliveryStatus.DEAD, "HTTP 400"),
        ((302, {"Location": "http://127.0.0.1:1/elsewhere"}), DeliveryStatus.DEAD, "HTTP 302"),
        (503, DeliveryStatus.RETRYING, "HTTP 503"),
        (408, DeliveryStatus.RETRYING, "HTTP 408"),
        ("hang", DeliveryStatus.RETRYING, "timed out"),
    ],
)
async def test_webhook_answers_are_classified(
    store: Store,
    clock: Clock,
    receiver: Receiver,
    make_worker: MakeWorker,
    answer: object,
    status: DeliveryStatus,
    error: str,
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    receiver.script["/wire"] = [answer]
    await change(store, clock, S.CLEARED)
    await run_until_idle(await make_worker(wait=0.5))
    delivery = (await outbox(store))[("wire", "webhook")]
    assert delivery.status is status
    assert error in (delivery.last_error or "")
    assert len(receiver.hits) == 1  # the redirect was not followed


def loopback_name() -> str:
    """A host name other than 'localhost' that resolves only to loopback here."""
    name = socket.gethostname()
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        found = set()
    if not found or not all(ip_address(a).is_loopback for a in found):
        pytest.skip(f"host name {name!r} does not resolve to loopback only on this machine")
    return name


async def test_the_default_policy_refuses_loopback_targets(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    name = loopback_name()
    await seed(
        store,
        clock(),
        hook("literal", receiver, "/a"),
        Subscriber(
            id="named",
            webhook=WebhookEndpoint(url=f"http://{name}:{receiver.port}/b", secrets=(SECRET,)),
            source=Source.API,
        ),
    )
    await change(store, clock, S.CLEARED)
    await run_until_idle(await make_worker(allow=()))
    found = await outbox(store)
    literal = found[("literal", "webhook")]
    named = found[("named", "webhook")]
    assert literal.status is named.status is DeliveryStatus.DEAD
    assert "refused target 127.0.0.1" in (literal.last_error or "")
    # The name is resolved, and the resolver hands the socket no refused address.
    assert f"refused target {name}" in (named.last_error or "")
    assert receiver.hits == []


async def test_smtp_451_then_250_is_retried_and_550_is_dead(
    store: Store, clock: Clock, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    await seed(
        store,
        clock(),
        mail("later", "later@example.org"),
        mail("never", "never@example.org"),
        mail("fine", "fine@example.org"),
    )
    smtp_server.box.rcpt_script = {
        "later@example.org": ["451 4.7.1 greylisted, try later"],
        "never@example.org": ["550 5.1.1 no such user"],
    }
    worker = await make_worker()
    await change(store, clock, S.CLEARED)
    await run_until_idle(worker)
    found = await outbox(store)
    assert found[("fine", "email")].status is DeliveryStatus.SENT
    assert found[("later", "email")].status is DeliveryStatus.RETRYING
    assert "451" in (found[("later", "email")].last_error or "")
    assert found[("never", "email")].status is DeliveryStatus.DEAD
    assert "550" in (found[("never", "email")].last_error or "")
    clock.advance(timedelta(seconds=6))
    await run_until_idle(worker)
    assert (await outbox(store))[("later", "email")].status is DeliveryStatus.SENT
    (message,) = smtp_server.box.to("later@example.org")
    assert message["Message-ID"] == f"<{found[('later', 'email')].id}@example.org>"
    assert smtp_server.box.to("never@example.org") == []


async def test_smtp_connections_are_reused(
    store: Store, clock: Clock, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    readers = [mail(f"r{i}", f"r{i}@example.org") for i in range(30)]
    await seed(store, clock(), *readers)
    await change(store, clock, S.CLEARED)
    await run_until_idle(await make_worker())
    assert len(smtp_server.box.messages) == 30
    assert smtp_server.box.connections <= 4  # the pool size, not one per message


async def test_quiet_hours_hold_routine_news_until_morning(
    store: Store, clock: Clock, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    clock.now = datetime(2026, 2, 25, 23, 30, tzinfo=MOSCOW)
    sleepy = mail(
        "sleepy",
        "sleepy@example.org",
        timezone="Europe/Moscow",
        quiet_hours=QuietHours(start=time(23), end=time(7)),
    )
    await seed(store, clock(), sleepy, status=S.CLEARED)
    worker = await make_worker()
    await change(store, clock, S.CONFIRMED)  # routine: waits
    await change(store, clock, S.POSTPONED, reason="unwell")  # urgent: goes now
    await run_until_idle(worker)
    kinds = [m["Subject"].split(":")[0] for m in smtp_server.box.to("sleepy@example.org")]
    assert kinds == ["Postponed"]
    clock.now = datetime(2026, 2, 26, 7, 0, tzinfo=MOSCOW)
    await run_until_idle(worker)
    assert len(smtp_server.box.to("sleepy@example.org")) == 2


async def test_a_dead_workers_claim_is_taken_over_after_its_lease(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    await change(store, clock, S.CLEARED)
    async with store.write() as tx:  # a worker claims, then dies without a word
        (claimed,) = await tx.claim(
            worker="dead", now=clock(), lease=timedelta(seconds=1), limit=10
        )
    survivor = await make_worker(name="survivor")
    assert await run_until_idle(survivor) == 0
    # Claims run out by the database's clock on PostgreSQL, by the worker's on SQLite.
    clock.advance(timedelta(seconds=2))
    await asyncio.sleep(1.2)
    assert await run_until_idle(survivor) == 1
    assert [h.headers["webhook-id"] for h in receiver.hits] == [claimed.id]
    # A late report from the dead worker changes nothing.
    from notifier.domain.outbox import AttemptResult, Outcome, after_attempt
    from notifier.domain.retry import RetryPolicy

    late = after_attempt(
        claimed,
        AttemptResult(outcome=Outcome.PERMANENT, error="late"),
        at=clock(),
        duration_ms=1,
        policy=RetryPolicy(),
        random=0.0,
    )
    async with store.write() as tx:
        assert await tx.record_attempts([late], worker="dead") == 0
    assert (await outbox(store))[("wire", "webhook")].status is DeliveryStatus.SENT


async def test_two_workers_never_claim_the_same_delivery(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    import asyncio

    await seed(store, clock(), *(hook(f"h{i}", receiver, f"/h{i}") for i in range(60)))
    await change(store, clock, S.CLEARED)
    receiver.delay = 0.01
    one = await make_worker(name="one", batch=7)
    two = await make_worker(name="two", batch=7)
    await asyncio.gather(run_until_idle(one), run_until_idle(two))
    ids = [h.headers["webhook-id"] for h in receiver.hits]
    assert len(ids) == len(set(ids)) == 60


async def test_a_dead_delivery_can_be_replayed(
    store: Store, clock: Clock, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    receiver.script["/wire"] = [400]
    worker = await make_worker()
    await change(store, clock, S.CLEARED)
    await run_until_idle(worker)
    dead = (await outbox(store))[("wire", "webhook")]
    assert dead.status is DeliveryStatus.DEAD
    async with store.write() as tx:
        await tx.retry_delivery(dead.id, now=clock())
    await run_until_idle(worker)
    assert (await outbox(store))[("wire", "webhook")].status is DeliveryStatus.SENT
    assert [h.headers["webhook-id"] for h in receiver.hits] == [dead.id, dead.id]


async def test_enqueueing_the_same_delivery_twice_keeps_one(
    store: Store, clock: Clock, receiver: Receiver
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"))
    result = await change(store, clock, S.CLEARED)
    (delivery,) = (await outbox(store)).values()
    async with store.write() as tx:
        assert await tx.enqueue([delivery], now=clock()) == 0
    assert result.deliveries == 1
    assert delivery.channel is Channel.WEBHOOK
    async with store.read() as tx:
        said = await tx.notices([delivery.notice_id])
    assert said[delivery.notice_id]["type"] == "meeting.cleared"


async def test_a_fan_out_stores_what_it_says_once(
    store: Store, clock: Clock, receiver: Receiver
) -> None:
    from sqlalchemy import func, select

    from notifier.store.tables import notices

    await seed(store, clock(), *(hook(f"h{i}", receiver, f"/h{i}") for i in range(20)))
    assert (await change(store, clock, S.CLEARED)).deliveries == 20
    async with store.read() as tx:
        count = (await tx.connection.execute(select(func.count()).select_from(notices))).scalar()
    assert count == 1


async def test_a_coalescing_window_sends_one_message_with_every_change_latest_state_last(
    store: Store,
    clock: Clock,
    receiver: Receiver,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    await seed(
        store,
        clock(),
        hook("wire", receiver, "/wire"),
        mail("press", "press@example.org"),
        status=S.CONFIRMED,
        coalesce=timedelta(seconds=30),
    )
    worker = await make_worker()
    await change(store, clock, S.POSTPONED, reason="unwell")
    clock.advance(timedelta(seconds=10))
    await change(store, clock, S.CLEARED, reason="assessment negative")
    clock.advance(timedelta(seconds=10))
    evening = datetime(2026, 3, 2, 21, 0, tzinfo=MOSCOW)
    await change(store, clock, S.RESCHEDULED, starts_at=evening, reason="evening")
    assert await run_until_idle(worker) == 0  # held: the window runs from the first change
    clock.advance(timedelta(seconds=10))
    assert await run_until_idle(worker) == 2  # one per endpoint

    (hit,) = receiver.verified("/wire")
    body = hit.verified
    assert body["type"] == "meeting.rescheduled"
    assert body["data"]["meeting"]["status"] == "rescheduled"
    assert [c["to"] for c in body["data"]["changes"]] == ["postponed", "cleared", "rescheduled"]
    (message,) = smtp_server.box.to("press@example.org")
    text = message.get_body(("plain",)).get_content()
    assert "What changed, in order:" in text
    assert text.index("- Postponed (unwell)") < text.index("- Rescheduled (evening)")
    statuses = sorted(d.status.value for d in await _all(store))
    assert statuses == ["merged"] * 4 + ["sent"] * 2

    # A change after the message went out is a message of its own, never merged back.
    await change(store, clock, S.CANCELLED, reason="called off")
    clock.advance(timedelta(seconds=31))
    await run_until_idle(worker)
    assert [h.verified["type"] for h in receiver.verified("/wire")] == [
        "meeting.rescheduled",
        "meeting.cancelled",
    ]
    assert "changes" not in receiver.verified("/wire")[1].verified["data"]
