"""Replay is usable: a replayed dead delivery gets a fresh set of attempts, and dead
deliveries can be replayed in bulk (filtered, counted, dry run) from the core, the API and
the CLI alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx

from notifier import service
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import DeliveryFilter, DeliveryStatus, Replay
from notifier.domain.retry import RetryPolicy
from notifier.store import Store
from tests.helpers.api import AUTH
from tests.helpers.outbox import change, hook, outbox, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import Receiver

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
#: Two attempts in all: the immediate one and one retry a second later.
SHORT = RetryPolicy(schedule=(timedelta(0), timedelta(seconds=1)), jitter=0)


async def kill(store: Store, clock: Clock, worker: OutboxWorker) -> None:
    """Fail every due delivery until it is dead."""
    for _ in range(3):
        await run_until_idle(worker)
        clock.advance(timedelta(seconds=2))


async def test_a_replayed_dead_delivery_gets_a_fresh_set_of_attempts(
    store: Store, clock: Clock, now: datetime, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, now, hook("wire", receiver, "/wire"))
    receiver.default = lambda path: 503
    await change(store, clock, MeetingStatus.CLEARED)
    worker = await make_worker(policy=SHORT)
    await kill(store, clock, worker)
    dead = (await outbox(store))[("wire", "webhook")]
    assert dead.status is DeliveryStatus.DEAD
    assert dead.attempts == 2

    replayed = await service.retry_delivery(store, dead.id, now=clock())
    assert replayed.attempts == 0
    await run_until_idle(worker)  # fails once more: retried, not dead on the spot
    after = (await outbox(store))[("wire", "webhook")]
    assert after.status is DeliveryStatus.RETRYING
    assert after.attempts == 1
    receiver.default = lambda path: 204
    clock.advance(timedelta(seconds=2))
    await run_until_idle(worker)
    assert (await outbox(store))[("wire", "webhook")].status is DeliveryStatus.SENT


async def test_dead_deliveries_are_replayed_in_bulk_with_filters_and_a_dry_run(
    store: Store, clock: Clock, now: datetime, receiver: Receiver, make_worker: MakeWorker
) -> None:
    await seed(store, now, hook("a", receiver, "/a"), hook("b", receiver, "/b"))
    receiver.default = lambda path: 503
    await change(store, clock, MeetingStatus.CLEARED)
    worker = await make_worker(policy=SHORT)
    await kill(store, clock, worker)
    clock.advance(timedelta(hours=1))
    await change(store, clock, MeetingStatus.CANCELLED)
    await kill(store, clock, worker)
    found = {d.id: d for d in (await outbox_all(store))}
    assert all(d.status is DeliveryStatus.DEAD for d in found.values())
    assert len(found) == 4

    dry = await service.replay(store, Replay(), now=clock(), dry_run=True)
    assert sorted(dry) == sorted(found)
    assert all(d.status is DeliveryStatus.DEAD for d in await outbox_all(store))
    only_b = await service.replay(store, Replay(subscriber_id="b"), now=clock(), dry_run=True)
    assert len(only_b) == 2
    recent = await service.replay(
        store, Replay(since=clock() - timedelta(minutes=5)), now=clock(), dry_run=True
    )
    assert len(recent) == 2
    done = await service.replay(store, Replay(status=DeliveryFilter.FAILED), now=clock())
    assert sorted(done) == sorted(found)
    assert all(
        d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in await outbox_all(store)
    )
    assert await service.replay(store, Replay(), now=clock()) == []


async def outbox_all(store: Store) -> list[object]:
    async with store.read() as tx:
        return list(await tx.deliveries(limit=1000))


async def test_bulk_replay_over_the_api(api: httpx.AsyncClient) -> None:
    answer = await api.post("/v1/deliveries/retry", json={"dry_run": True}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 0, "dry_run": True, "ids": []}
    refused = await api.post("/v1/deliveries/retry", json={"status": "sent"}, headers=AUTH)
    assert refused.status_code == 422
    assert "cannot be replayed" in refused.json()["detail"]
