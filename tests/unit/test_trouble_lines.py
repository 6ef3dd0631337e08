"""The daemon's loops say an outage once when it starts and once when it ends, in their
own words (what operators and log alerts match on), however many polls fail between."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from notifier import compose as app_module
from notifier.compose import wait_for_database
from notifier.delivery import OutboxWorker
from notifier.domain.retry import RetryPolicy
from notifier.scheduler import Scheduler

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _outage() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any]]:
    return [(r.getMessage(), getattr(r, "action", None)) for r in caplog.records]


def _failing_then_working(failures: int) -> Callable[[], Any]:
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise _outage()

    return job


async def test_a_periodic_job_says_its_trouble_once_and_how_long_it_lasted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notifier")
    now = [START]
    scheduler = Scheduler(None, clock=lambda: now[0], grace=timedelta(minutes=1))  # type: ignore[arg-type]
    run = scheduler._guarded(_failing_then_working(3), "prune", timedelta(seconds=5))
    for _ in range(5):
        await run()
        now[0] += timedelta(seconds=20)
    assert _said(caplog) == [
        (
            "prune failing (OperationalError: (builtins.ConnectionRefusedError) connection "
            "refused); it runs again every 5.0s",
            "job_trouble",
        ),
        ("prune working again after 60s", "job_recovered"),
    ]
    assert caplog.records[0].job == "prune"  # type: ignore[attr-defined]


async def test_waiting_for_the_database_is_one_line_each_way(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="notifier")
    answers = iter([_outage(), _outage(), None])

    async def reachable(url: str) -> None:
        answer = next(answers)
        if answer is not None:
            raise answer

    monkeypatch.setattr(app_module, "reachable", reachable)
    monkeypatch.setattr(app_module, "wait_any", lambda *events, timeout: asyncio.sleep(0))
    assert await wait_for_database("postgresql://u:secret@db/n", asyncio.Event()) is True
    assert _said(caplog) == [
        (
            "waiting for the database postgresql://u:***@db/n (OperationalError); retrying "
            "with backoff up to 30s",
            "database_wait",
        ),
        ("the database answers after 0s; starting", "database_back"),
    ]


async def test_the_worker_is_working_again_only_once_every_loop_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notifier")
    worker = OutboxWorker(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        policy=RetryPolicy(),
        clock=lambda: START,
        poll=timedelta(seconds=1),
        name="worker-t",
        parallel=2,
    )

    async def one_pass(number: int, *, fails: bool) -> list[str]:
        """One turn of parallel loop `number`; what it said."""
        stop = asyncio.Event()

        async def start_batch() -> int:
            stop.set()  # the loop ends after this turn
            if fails:
                raise _outage()
            return 0

        worker._start_batch = start_batch  # type: ignore[method-assign]
        caplog.clear()
        await asyncio.wait_for(worker._loop(stop, number), 5)
        return [m for m, _ in _said(caplog)]

    trouble = (
        "worker-t: cannot work (OperationalError: (builtins.ConnectionRefusedError) "
        "connection refused); retrying every 1.0s"
    )
    assert await one_pass(0, fails=True) == [trouble]
    assert await one_pass(1, fails=True) == []
    assert await one_pass(0, fails=False) == []  # loop 1 still fails
    assert await one_pass(0, fails=True) == []
    assert await one_pass(1, fails=False) == []  # loop 0 fails again
    (back,) = await one_pass(0, fails=False)
    assert back.startswith("worker-t: working again after ")
    assert back.endswith("s")
    assert await one_pass(1, fails=True) == [trouble]  # a new episode
