"""An accepted delivery is never sent again because its batch was slow: one hanging endpoint
and a hundred fast ones, a lease shorter than the hang, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import DeliveryStatus
from notifier.store import Store
from tests.helpers.outbox import change, hook, outbox, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
FAST = 100


async def test_a_hanging_endpoint_makes_no_fast_delivery_go_twice(
    store: Store, clock: Clock, now: datetime, receiver: Receiver, make_worker: MakeWorker
) -> None:
    readers = [hook(f"fast-{n}", receiver, f"/fast/{n}") for n in range(FAST)]
    await seed(store, now, hook("slow", receiver, "/slow"), *readers)
    receiver.script["/slow"] = ["hang"] * 10
    # Three changes: the slow reader's lane holds three deliveries, in one batch.
    await change(store, clock, MeetingStatus.CLEARED, reason="one")
    await change(
        store, clock, MeetingStatus.RESCHEDULED, starts_at=now + timedelta(days=3), reason="two"
    )
    await change(store, clock, MeetingStatus.CONFIRMED, reason="three")
    # A lease shorter than the slow lane would take (3 x 1 s), two loops and a second
    # worker competing for expired claims: what the old worker re-sent.
    first = await make_worker(
        wait=1.0, lease=timedelta(seconds=1.5), real_clock=True, name="first", batch=1000
    )
    second = await make_worker(
        wait=1.0, lease=timedelta(seconds=1.5), real_clock=True, name="second", batch=1000
    )
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run(stop)) for w in (first, second)]
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            fast = [h for h in receiver.hits if h.path.startswith("/fast/")]
            if len(fast) >= FAST * 3:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # long enough for any expired claim to be sent again
    finally:
        stop.set()
        await asyncio.gather(*runs)

    fast = Counter(
        (h.path, h.headers["webhook-id"]) for h in receiver.hits if h.path.startswith("/fast/")
    )
    assert len(fast) == FAST * 3
    repeated = {key: n for key, n in fast.items() if n > 1}
    assert not repeated, f"{len(repeated)} accepted deliveries were sent again"
    # The slow endpoint was tried once in its batch, not three times in a row.
    slow = [h for h in receiver.hits if h.path == "/slow"]
    assert len(slow) <= 2
    # Its first message retries; the two after it wait behind it, untried (in order).
    async with store.read() as tx:
        lane = sorted(
            (d for d in await tx.deliveries(limit=1000) if d.subscriber_id == "slow"),
            key=lambda d: d.sequence,
        )
    assert [(d.status, d.attempts > 0) for d in lane] == [
        (DeliveryStatus.RETRYING, True),
        (DeliveryStatus.PENDING, False),
        (DeliveryStatus.PENDING, False),
    ]


async def test_claims_run_out_by_the_databases_clock_not_a_skewed_replicas(
    store: Store, now: datetime, receiver: Receiver
) -> None:
    if store.backend != "postgresql":
        pytest.skip("one SQLite daemon: its own clock is the only one")
    await seed(store, now, hook("wire", receiver, "/wire"))
    await change(store, lambda: datetime.now(UTC), MeetingStatus.CLEARED)  # type: ignore[arg-type]
    real = datetime.now(UTC)
    async with store.write() as tx:
        assert len(await tx.claim(worker="a", now=real, lease=timedelta(seconds=30), limit=10)) == 1
    # A replica whose clock runs an hour fast must not think that claim ran out.
    async with store.write() as tx:
        skewed = real + timedelta(hours=1)
        assert await tx.claim(worker="b", now=skewed, lease=timedelta(seconds=30), limit=10) == []


async def test_claims_handed_back_are_due_at_once_with_their_attempts_kept(
    store: Store, clock: Clock, now: datetime, receiver: Receiver
) -> None:
    """The three ways a claim ends without an attempt: `release` (some, on shutdown),
    `release_claims` (a worker's, after the drain), `recover_claims` (every one, at a
    SQLite start-up)."""
    await seed(store, now, *(hook(f"r{n}", receiver, f"/r{n}") for n in range(6)))
    await change(store, clock, MeetingStatus.CLEARED)
    lease = timedelta(minutes=2)
    async with store.write() as tx:
        first = await tx.claim(worker="w1", now=clock(), lease=lease, limit=4)
        second = await tx.claim(worker="w2", now=clock(), lease=lease, limit=10)
    assert (len(first), len(second)) == (4, 2)

    async def statuses() -> Counter[DeliveryStatus]:
        return Counter(d.status for d in (await outbox(store)).values())

    async with store.write() as tx:
        await tx.release([d.id for d in first[:1]], worker="w1")
        await tx.release([d.id for d in second], worker="w1")  # not w1's: left alone
    assert await statuses() == Counter({DeliveryStatus.SENDING: 5, DeliveryStatus.PENDING: 1})
    async with store.write() as tx:
        assert await tx.release_claims("w1") == 3
    assert await statuses() == Counter({DeliveryStatus.SENDING: 2, DeliveryStatus.PENDING: 4})
    async with store.write() as tx:
        assert await tx.recover_claims() == 2
        due = await tx.claim(worker="w3", now=clock(), lease=lease, limit=10)
    assert len(due) == 6  # every one due at once
    assert all(d.attempts == 0 for d in due)
