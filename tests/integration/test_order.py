"""Per reader and channel, a later message of a meeting never overtakes an earlier one that
is still retrying; and an endpoint that accepts and never answers costs only its own
deliveries. Real webhook receiver, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus as S
from notifier.domain.outbox import DeliveryStatus
from notifier.store import Store
from tests.helpers.outbox import change, hook, mail, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver, SmtpServer

MakeWorker = Callable[..., Awaitable[OutboxWorker]]


async def lane(store: Store, subscriber: str) -> list[tuple[str, DeliveryStatus]]:
    async with store.read() as tx:
        found = await tx.deliveries(limit=1000)
    return [
        (d.kind.value, d.status)
        for d in sorted(found, key=lambda d: d.sequence)
        if d.subscriber_id == subscriber
    ]


async def test_a_retried_message_still_arrives_before_the_later_one_on_each_channel(
    store: Store,
    clock: Clock,
    receiver: Receiver,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    await seed(store, clock(), hook("wire", receiver, "/wire"), mail("desk", "desk@example.org"))
    receiver.script["/wire"] = [503]
    smtp_server.box.rcpt_script["desk@example.org"] = ["451 4.3.0 try again later"]
    worker = await make_worker()
    await change(store, clock, S.CLEARED, reason="clearance")
    await change(
        store, clock, S.RESCHEDULED, reason="evening", starts_at=clock() + timedelta(days=5)
    )
    await run_until_idle(worker)
    # "cleared" failed once on each channel; "rescheduled" waits behind it, untried.
    for reader in ("wire", "desk"):
        assert await lane(store, reader) == [
            ("meeting.cleared", DeliveryStatus.RETRYING),
            ("meeting.rescheduled", DeliveryStatus.PENDING),
        ]
    assert [(h.verified["type"], h.status) for h in receiver.verified("/wire")] == [
        ("meeting.cleared", 503)
    ]
    assert smtp_server.box.to("desk@example.org") == []

    clock.advance(timedelta(hours=1))  # past the first retry's backoff
    await run_until_idle(worker)
    sent = [h.verified["type"] for h in receiver.verified("/wire") if h.status == 204]
    assert sent == ["meeting.cleared", "meeting.rescheduled"]
    subjects = [m["Subject"] for m in smtp_server.box.to("desk@example.org")]
    assert len(subjects) == 2
    assert subjects[0].startswith("Cleared")
    assert subjects[1].startswith("Rescheduled")


async def test_one_hanging_endpoint_of_a_hundred_costs_only_its_own_deliveries(
    store: Store, now: datetime, receiver: Receiver, make_worker: MakeWorker
) -> None:
    """Changes come one after another; each must reach the 99 others long before the
    hanging endpoint's attempt times out (it used to hold both delivery loops, batch after
    batch: 60 readers took 15.4 s instead of 0.5 s)."""
    fast = [hook(f"fast-{n}", receiver, f"/fast/{n}") for n in range(99)]
    await seed(store, now, hook("hang", receiver, "/hang"), *fast)
    receiver.script["/hang"] = ["hang"] * 20
    timeout = 6.0
    clock = Clock(now)
    worker = await make_worker(wait=timeout, real_clock=True, parallel=2)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    loop = asyncio.get_running_loop()
    statuses = [S.CLEARED, S.CONFIRMED, S.POSTPONED, S.CLEARED, S.CONFIRMED]
    took = []
    try:
        for number, status in enumerate(statuses, start=1):
            started = loop.time()
            await change(store, clock, status, reason=f"change {number}")
            worker.wake.set()
            while len([h for h in receiver.hits if h.path.startswith("/fast/")]) < 99 * number:
                assert loop.time() - started < timeout / 2, (number, took)
                await asyncio.sleep(0.02)
            took.append(round(loop.time() - started, 2))
        # The hanging endpoint was tried once: its later messages wait behind the first.
        assert [h.path for h in receiver.hits].count("/hang") == 1
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout + 5)
