"""Idle loops keep a flat number of live tasks: polling many times leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from notifier.delivery import OutboxWorker
from notifier.store import Store
from notifier.supervisor import Expander, LoopLag, Tasks
from notifier.waiting import wait_any
from tests.integration.conftest import Clock


def live() -> int:
    return sum(1 for task in asyncio.all_tasks() if not task.done())


async def test_wait_any_leaves_no_waiter_behind_on_timeout_event_or_cancel() -> None:
    a, b = asyncio.Event(), asyncio.Event()
    before = live()
    for _ in range(200):
        assert await wait_any(a, b, timeout=0.0001) is False
    assert live() == before
    b.set()
    assert await wait_any(a, b, timeout=5) is True
    b.clear()
    waiting = asyncio.ensure_future(wait_any(a, b, timeout=None))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert live() == before


async def test_the_expander_and_the_worker_idle_for_many_polls_keep_tasks_flat(
    store: Store, clock: Clock, make_worker: Callable[..., Awaitable[OutboxWorker]]
) -> None:
    """At a 10 ms poll the expander used to leave two waiters a poll (656 tasks in 3.5 s)."""
    worker = await make_worker(poll=timedelta(milliseconds=10))
    expander = Expander(
        store, clock=clock, on_chunk=worker.wake.set, poll=timedelta(milliseconds=10)
    )
    lag = LoopLag(every=0.01, observe=lambda _: None)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        tasks = Tasks(group, stop)
        await expander.start(tasks)
        await lag.start(tasks)
        group.create_task(worker.run(stop))
        before = live()
        counts = []
        for _ in range(12):
            await asyncio.sleep(0.15)  # ~15 polls of each loop
            counts.append(live())
        await expander.stop()
        await lag.stop()
        stop.set()
    # Past the first polls (connections, the worker's loops), the count stays where it is.
    assert max(counts[6:]) <= max(counts[:6]) + 2, counts
    assert live() <= before  # and nothing of theirs outlives stop()
