"""Nothing grows without bound: the leader prunes what has served its time, in batches,
and keeps what an operator still needs (history, unsent and dead deliveries)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import DeliveryStatus
from notifier.store import Store
from notifier.store.records import Pruned
from notifier.store.tables import deliveries, delivery_attempts, notices, processed_events
from tests.helpers.outbox import change, hook, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver

MakeWorker = Callable[..., Awaitable[OutboxWorker]]


async def count(store: Store, table: object) -> int:
    async with store.read() as tx:
        return int((await tx.connection.execute(select(func.count()).select_from(table))).scalar())  # type: ignore[arg-type]


async def test_old_finished_records_are_pruned_in_batches_and_the_rest_kept(
    store: Store, clock: Clock, now: datetime, receiver: Receiver, make_worker: MakeWorker
) -> None:
    readers = [hook(f"r{n}", receiver, f"/r/{n}") for n in range(5)]
    await seed(store, now, hook("gone", receiver, "/gone"), *readers)
    receiver.script["/gone"] = [400]  # dead at once: kept for an operator to look at
    await change(store, clock, MeetingStatus.CLEARED, event_id="evt-1")
    await run_until_idle(await make_worker())
    assert await count(store, deliveries) == 6

    # Nothing is old yet; a zero retention keeps everything whatever its age.
    assert not any(
        (await service.prune(store, retention=timedelta(days=90), now=clock())).as_dict().values()
    )
    later = clock() + timedelta(days=91)
    assert not any(
        (await service.prune(store, retention=timedelta(0), now=later)).as_dict().values()
    )

    # A fresh change after the old ones: its records are young and stay.
    clock.now = later - timedelta(days=1)
    await change(store, clock, MeetingStatus.CANCELLED, event_id="evt-2")
    pruned = await service.prune(store, retention=timedelta(days=90), now=later, batch=2)
    assert pruned == Pruned(deliveries=5, attempts=6, events=1, notices=0)
    async with store.read() as tx:
        left = await tx.deliveries(limit=100)
        history = await tx.history("talks")
    assert {d.status for d in left} == {DeliveryStatus.DEAD, DeliveryStatus.PENDING}
    assert len([d for d in left if d.status is DeliveryStatus.PENDING]) == 6
    assert len(history) >= 2  # history is never pruned
    assert await count(store, processed_events) == 1
    assert await count(store, delivery_attempts) == 0
    # The old notice is still referenced by the dead delivery: kept with it.
    assert await count(store, notices) == 2
