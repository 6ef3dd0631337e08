"""The daemon's supervisor: start order, reverse stop order, and failures that stop it."""

from __future__ import annotations

import asyncio
import time

import pytest

from notifier.sources.parsers import Parsers
from notifier.supervisor import LoopLag, ParserPool, Tasks, supervise


class Part:
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False) -> None:
        self.name, self.log, self.fail_start = name, log, fail_start
        self.quit = asyncio.Event()

    async def start(self, tasks: Tasks) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")
        tasks.create_task(self._wait, name=self.name)

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self.quit.set()

    async def _wait(self) -> None:
        await self.quit.wait()


class Crashing(Part):
    async def start(self, tasks: Tasks) -> None:
        self.log.append(f"start {self.name}")

        async def crash() -> None:
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")

        tasks.create_task(crash, name=self.name)


async def test_parts_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    stop = asyncio.Event()
    running = asyncio.create_task(supervise([Part(n, log) for n in "abc"], stop))
    await asyncio.sleep(0.01)
    assert log == ["start a", "start b", "start c"]
    stop.set()
    await asyncio.wait_for(running, 5)
    assert log[3:] == ["stop c", "stop b", "stop a"]


async def test_a_part_whose_work_fails_stops_the_daemon_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    stop = asyncio.Event()
    parts = [Part("a", log), Crashing("b", log), Part("c", log)]
    await asyncio.wait_for(supervise(parts, stop), 5)  # returns: nothing else to wait for
    assert stop.is_set()
    assert log[3:] == ["stop c", "stop b", "stop a"]
    assert "b failed; notifier stops" in caplog.text


async def test_a_part_that_cannot_start_stops_those_started() -> None:
    log: list[str] = []
    with pytest.raises(ExceptionGroup) as raised:
        await asyncio.wait_for(
            supervise([Part("a", log), Part("b", log, fail_start=True)], asyncio.Event()), 5
        )
    assert raised.group_contains(RuntimeError, match="b cannot start")
    assert log == ["start a", "stop a"]


async def test_the_loop_lag_monitor_sees_a_blocked_loop() -> None:
    seen: list[float] = []
    monitor = LoopLag(every=0.01, observe=seen.append)
    stop = asyncio.Event()

    async def block_then_stop() -> None:
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # noqa: ASYNC251 -- the blocking call the monitor must see
        await asyncio.sleep(0.05)
        stop.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(block_then_stop())
        group.create_task(supervise([monitor], stop))
    assert monitor.worst >= 0.15
    assert max(seen) == monitor.worst
    assert sorted(seen)[len(seen) // 2] < 0.05  # otherwise on time


async def test_the_feed_parser_processes_end_with_the_daemon_after_every_later_part() -> None:
    log: list[str] = []

    class Pool(Parsers):
        def stop(self) -> None:
            log.append("stop parsers")
            super().stop()

    stop = asyncio.Event()
    running = asyncio.create_task(supervise([ParserPool(Pool()), Part("timers", log)], stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert log == ["start timers", "stop timers", "stop parsers"]
