"""Scheduler leadership on both backends: one leader, takeover after expiry, fencing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from notifier import service
from notifier.domain.errors import NotLeader
from notifier.domain.models import MeetingStatus, StatusChange
from notifier.leadership import Leadership
from notifier.metrics import REGISTRY
from notifier.scheduler import Scheduler
from notifier.store import FencedStore, Lease, Store
from tests.conftest import _truncate
from tests.integration.conftest import Clock
from tests.integration.test_reminders import NOW, reader, seed

TTL = timedelta(seconds=10)


def contender(store: Store, clock: Clock, name: str, **kw: object) -> Leadership:
    return Leadership(store, clock=clock, ttl=TTL, holder=name, **kw)  # type: ignore[arg-type]


async def test_one_leader_renews_and_another_takes_over_only_after_expiry(store: Store) -> None:
    clock = Clock(NOW)
    changes: list[tuple[str, bool]] = []
    a = contender(store, clock, "a", on_change=lambda leading: changes.append(("a", leading)))
    b = contender(store, clock, "b", on_change=lambda leading: changes.append(("b", leading)))

    assert await a.tick() is True
    assert await b.tick() is False
    assert (a.term, b.term) == (1, None)
    clock.advance(timedelta(seconds=8))
    assert await a.tick() is True  # renewed: same term, new expiry
    assert a.term == 1
    clock.advance(timedelta(seconds=8))
    assert await b.tick() is False  # 16 s after start, but only 8 s after the renewal

    # a stops renewing (dead or cut off): its own clock tells it to stop leading at expiry,
    # and b takes over with the next term.
    clock.advance(timedelta(seconds=3))
    assert a.leading is False
    assert await b.tick() is True
    assert b.term == 2
    assert await a.tick() is False
    assert changes == [("a", True), ("a", False), ("b", True)]
    async with store.read() as tx:
        assert await tx.lease("scheduler") == Lease(
            name="scheduler", holder="b", term=2, expires_at=clock() + TTL
        )


async def test_a_graceful_stop_hands_over_at_once(store: Store) -> None:
    clock = Clock(NOW)
    a, b = contender(store, clock, "a"), contender(store, clock, "b")
    assert await a.tick()
    await a.release()
    assert a.leading is False
    assert await b.tick()
    assert b.term == 2


async def test_of_many_contenders_at_once_exactly_one_leads(store: Store) -> None:
    clock = Clock(NOW)
    contenders = [contender(store, clock, f"r{n}") for n in range(8)]
    for _ in range(3):
        won = await asyncio.gather(*(c.tick() for c in contenders))
        assert won.count(True) == 1
        clock.advance(timedelta(seconds=2))
    assert [c.term for c in contenders if c.leading] == [1]


async def test_a_sole_process_does_not_wait_out_its_crashed_predecessor(store: Store) -> None:
    clock = Clock(NOW)
    assert await contender(store, clock, "crashed").tick()
    restarted = contender(store, clock, "restarted", sole=True)
    assert await restarted.tick()
    assert restarted.term == 2
    # A renewal held up by a busy database does not cost a sole process its lease.
    clock.advance(TTL * 3)
    assert restarted.leading
    async with restarted.fenced.write() as tx:
        await tx.set_meta("still", "leading")


async def test_a_former_leader_commits_nothing_once_another_took_over(store: Store) -> None:
    clock = Clock(NOW)
    a, b = contender(store, clock, "a"), contender(store, clock, "b")
    await a.tick()
    stale = a.current()
    assert stale is not None
    clock.advance(TTL + timedelta(seconds=1))
    assert await b.tick()

    # a was paused (say) through the takeover and still believes in its term.
    paused = FencedStore(store, lambda: stale)
    with pytest.raises(NotLeader, match="moved on from term 1 to term 2"):
        async with paused.write() as tx:
            await tx.set_meta("written-by", "a")
    async with store.read() as tx:
        assert await tx.meta_value("written-by", default="nobody") == "nobody"
    with pytest.raises(NotLeader):
        async with FencedStore(store, lambda: None).write():
            pass
    async with b.fenced.write() as tx:
        await tx.set_meta("written-by", "b")


async def test_reminders_due_during_a_takeover_fire_once_under_the_new_term(
    store: Store,
) -> None:
    start = NOW + timedelta(hours=2)
    await seed(store, start, reader(reminders=(timedelta(hours=1),)))
    async with store.read() as tx:
        ids = [rid for rid, _ in await tx.pending_reminders()]
    assert len(ids) == 1
    due = start - timedelta(hours=1)
    clock = Clock(due - TTL - timedelta(seconds=5))
    a, b = contender(store, clock, "a"), contender(store, clock, "b")
    await a.tick()
    stale = a.current()
    clock.advance(TTL + timedelta(seconds=5))  # a died; its timer rings in a paused process
    assert await b.tick()

    with pytest.raises(NotLeader):
        await service.fire_reminders(
            FencedStore(store, lambda: stale), ids, now=clock(), grace=timedelta(minutes=10)
        )
    outcomes = await service.fire_reminders(b.fenced, ids, now=clock(), grace=timedelta(minutes=10))
    assert [o.value for o in outcomes.values()] == ["fired"]
    again = await service.fire_reminders(b.fenced, ids, now=clock(), grace=timedelta(minutes=10))
    assert [o.value for o in again.values()] == ["gone"]
    async with store.read() as tx:
        found = await tx.deliveries(limit=100)
    assert [d.kind.value for d in found].count("meeting.reminder") == 1


async def test_only_the_leader_keeps_reminder_timers(store: Store) -> None:
    clock = Clock(NOW)
    await seed(store, NOW + timedelta(days=1), reader())
    leading = False
    scheduler = Scheduler(store, clock=clock, grace=TTL, leading=lambda: leading)
    await scheduler.start()
    try:
        assert scheduler.pending == 0
        leading = True
        assert await scheduler.sync(force=True) == 2
        assert scheduler.pending == 2
        await service.apply_status_change(
            store, StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED), now=NOW
        )
        leading = False
        await scheduler.sync()
        assert scheduler.pending == 0
    finally:
        scheduler.shutdown()


async def test_run_renews_until_stopped(store: Store) -> None:
    clock = Clock(NOW)
    a = contender(store, clock, "a")
    stop = asyncio.Event()
    running = asyncio.create_task(a.run(stop, every=timedelta(milliseconds=20)))
    await asyncio.sleep(0.1)
    clock.advance(timedelta(seconds=8))
    await asyncio.sleep(0.1)
    clock.advance(timedelta(seconds=8))  # 16 s: alive only because run() renewed it
    assert a.leading
    stop.set()
    await running
    await a.release()
    assert not a.leading


async def test_the_leader_gauge_follows_leadership(store: Store) -> None:
    clock = Clock(NOW)
    a = contender(store, clock, "a")
    await a.tick()
    assert REGISTRY.get_sample_value("notifier_scheduler_leader") == 1
    assert REGISTRY.get_sample_value("notifier_scheduler_term") == 1
    await a.release()
    assert REGISTRY.get_sample_value("notifier_scheduler_leader") == 0


async def test_a_burst_of_changes_costs_a_few_syncs_not_one_each(store: Store) -> None:
    await seed(store, NOW + timedelta(days=1), reader())
    scheduler = Scheduler(store, clock=Clock(NOW), grace=TTL)
    syncs = 0
    real_sync = scheduler.sync

    async def counted(*, force: bool = False) -> int:
        nonlocal syncs
        syncs += 1
        return await real_sync(force=force)

    scheduler.sync = counted  # type: ignore[method-assign]
    for _ in range(50):  # a burst within one turn of the loop: one sync
        scheduler.poke()
    assert scheduler._poking is not None
    await scheduler._poking
    assert syncs == 1
    scheduler.poke()
    await asyncio.sleep(0)  # that sync is under way; what comes now folds into one more
    for _ in range(50):
        scheduler.poke()
    await scheduler._poking
    assert syncs == 3
    assert scheduler.pending == 2


async def _notify_then_roll_back(store: Store) -> None:
    async with store.write() as tx:
        await tx.notify_outbox()
        raise RuntimeError("rolled back")


@pytest.mark.postgres
async def test_every_replica_hears_of_new_deliveries_when_they_commit(postgres_url: str) -> None:
    # PostgreSQL only: SQLite has one process, whose worker is woken directly.
    await _truncate(postgres_url)
    store, other = await Store.open(postgres_url), await Store.open(postgres_url)
    heard = asyncio.Event()
    stop = asyncio.Event()
    listening = asyncio.create_task(other.listen_outbox(heard.set, stop, check=0.1))
    try:
        await seed(store, NOW + timedelta(days=1), reader())
        await asyncio.wait_for(heard.wait(), 5)  # told on (re)connecting, and of the seed
        await asyncio.sleep(0.3)
        heard.clear()
        with pytest.raises(RuntimeError):
            await _notify_then_roll_back(store)
        await asyncio.sleep(0.3)
        assert not heard.is_set()  # rolled back: nobody is told
        await service.apply_status_change(
            store, StatusChange(meeting_id="talks", status=MeetingStatus.POSTPONED), now=NOW
        )
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        stop.set()
        await listening
        await store.close()
        await other.close()


async def test_timers_are_kept_only_for_a_near_horizon_and_refilled(store: Store) -> None:
    clock = Clock(NOW)
    # Two readers' reminders a day ahead; none within the horizon yet.
    await seed(store, NOW + timedelta(days=1), reader())
    scheduler = Scheduler(store, clock=clock, grace=TTL, horizon=timedelta(minutes=10))
    await scheduler.start()
    try:
        assert scheduler.pending == 0
        async with store.read() as tx:
            due = sorted(at for _, at in await tx.pending_reminders())
        # A refill while nothing is within reach sets no timer...
        clock.now = due[0] - timedelta(minutes=20)
        assert await scheduler.sync() == 0
        # ...and the refill every half horizon loads what came within reach, in time.
        clock.now = due[0] - timedelta(minutes=8)
        assert await scheduler.sync() >= 1
        assert scheduler.pending >= 1
        assert all(at < clock.now + timedelta(minutes=10) for at in scheduler._timers.values())
    finally:
        scheduler.shutdown()
