"""One endpoint that accepts and never answers, beside 99 that answer at once.

Ten changes in a row to 100 webhook readers, the outbox worker running with the daemon's
defaults (SQLite); the figure is the 99 fast readers' throughput with the hanging one
present, against the same 99 alone, measured in the same run (checklist 7: within 10%).
The hanging endpoint's timeout is 15 s, the daemon's default, so a worker that waited for
it would show here as a ratio far below 1.

    .venv/bin/python bench/hanging.py [--changes 10] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from ipaddress import ip_network
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from bench.fanout import SECRET, meeting  # noqa: E402
from notifier import service  # noqa: E402
from notifier.channels.webhook import WebhookChannel  # noqa: E402
from notifier.compose import utcnow  # noqa: E402
from notifier.delivery import OutboxWorker, Postman  # noqa: E402
from notifier.domain.models import (  # noqa: E402
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
    WebhookEndpoint,
)
from notifier.domain.retry import RetryPolicy  # noqa: E402
from notifier.rendering import Renderer  # noqa: E402
from notifier.store import Store  # noqa: E402

FAST = 99
STATUSES = [MeetingStatus.CLEARED, MeetingStatus.CONFIRMED, MeetingStatus.POSTPONED]


class Receiver:
    def __init__(self) -> None:
        self.fast = 0
        self.expected = 0
        self.all_in = asyncio.Event()
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/hang":
            await asyncio.sleep(3600)
        self.fast += 1
        if self.fast >= self.expected:
            self.all_in.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()


async def run(database: str, *, changes: int, hanging: bool) -> float:
    """Seconds until the 99 fast readers got every one of `changes` changes."""
    receiver = Receiver()
    receiver.expected = FAST * changes
    await receiver.start()
    store = await Store.open(database)
    now = utcnow()
    readers = [
        Subscriber(
            id=f"fast-{n:03d}",
            webhook=WebhookEndpoint(
                url=f"http://127.0.0.1:{receiver.port}/fast/{n}", secrets=(SECRET,)
            ),
            source=Source.API,
        )
        for n in range(FAST)
    ]
    if hanging:
        readers.append(
            Subscriber(
                id="hang",
                webhook=WebhookEndpoint(
                    url=f"http://127.0.0.1:{receiver.port}/hang", secrets=(SECRET,)
                ),
                source=Source.API,
            )
        )
    try:
        async with store.write() as tx:
            await tx.insert_meeting(meeting(now), now=now)
            for reader in readers:
                await tx.save_subscriber(reader, now=now)
        async with WebhookChannel(
            timeout=15, allow=[ip_network("127.0.0.1/32")], concurrency=64
        ) as hook:
            worker = OutboxWorker(
                store,
                Postman(
                    renderer=Renderer(),
                    email=None,
                    webhook=hook,
                    sender="Notifier <notifier@example.org>",
                    public_url="http://127.0.0.1:8080",
                    link_key="bench",
                ),
                policy=RetryPolicy(),
                clock=utcnow,
                batch=500,
                parallel=2,
                concurrency=64,
            )
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            started = time.perf_counter()
            for number in range(changes):
                await service.apply_status_change(
                    store,
                    StatusChange(
                        meeting_id="talks",
                        status=STATUSES[number % len(STATUSES)],
                        reason=f"change {number}",
                    ),
                    now=utcnow(),
                )
                worker.wake.set()
            await receiver.all_in.wait()
            took = time.perf_counter() - started
            # The receiver goes first, so the hanging send ends (connection closed) and the
            # worker stops as a daemon's does, nothing cancelled mid-transaction.
            await receiver.stop()
            stop.set()
            await running
        return took
    finally:
        await store.close()
        await receiver.stop()  # again when something above failed: harmless


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:

        def url(name: str) -> str:
            return args.database or f"sqlite+aiosqlite:///{folder}/{name}.db"

        # Baseline before and after, averaged: the machine is shared and noisy.
        alone = [await run(url("alone-1"), changes=args.changes, hanging=False)]
        beside = await run(url("beside"), changes=args.changes, hanging=True)
        alone.append(await run(url("alone-2"), changes=args.changes, hanging=False))
    base = sum(alone) / len(alone)
    count = FAST * args.changes
    ratio = base / beside
    print(f"{count} deliveries to 99 endpoints alone:          {count / base:8.0f} /s")
    print(f"the same, beside 1 endpoint that never answers: {count / beside:8.0f} /s")
    print(f"ratio: {ratio:.2f} (target >= 0.90)")
    results.add(
        "hanging",
        "99 endpoints' throughput beside 1 that hangs",
        round(count / beside),
        "/s",
        baseline=round(count / base),
        baseline_name="the same 99 alone",
        target=">= 0.9x",
        met=ratio >= 0.9,
    )


if __name__ == "__main__":
    asyncio.run(main())
