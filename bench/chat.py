"""Chat fan-out: one status change to N chat readers (Apprise ``json://``) through the
outbox, next to a bare loop of Apprise ``notify()`` calls to the same receiver, measured in
the same run (the machine is shared and noisy: compare the ratio).

The bare loop is what a script would do: one ``Apprise.notify()`` per reader, in turn. The
outbox pays for its guarantees (claims, attempts recorded, retries) and sends
`notify.threads` at once.

    .venv/bin/python bench/chat.py [--readers 1000] [--threads 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from ipaddress import ip_network
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from bench.fanout import meeting, start_peer  # noqa: E402
from bench.lag import p99  # noqa: E402
from notifier import service  # noqa: E402
from notifier.channels.chat import DEFAULT_SCHEMES, ChatChannel  # noqa: E402
from notifier.compose import utcnow  # noqa: E402
from notifier.delivery import OutboxWorker, Postman  # noqa: E402
from notifier.domain.models import MeetingStatus, Source, StatusChange, Subscriber  # noqa: E402
from notifier.domain.outbox import DeliveryStatus  # noqa: E402
from notifier.domain.retry import RetryPolicy  # noqa: E402
from notifier.rendering import Renderer  # noqa: E402
from notifier.store import Store  # noqa: E402
from notifier.supervisor import LoopLag, supervise  # noqa: E402

#: Event loop lag samples taken during the outbox run.
LAGS: list[float] = []


def bare_loop(urls: list[str], body: str) -> float:
    """Seconds for one `Apprise.notify()` per URL, in turn."""
    import apprise

    started = time.perf_counter()
    for url in urls:
        sender = apprise.Apprise()
        sender.add(url)
        if not sender.notify(title="Cleared: Talks", body=body):
            raise SystemExit("Apprise reported a failure")
    return time.perf_counter() - started


async def through_outbox(database: str, urls: list[str], threads: int) -> float:
    """Seconds from the change being accepted to every chat delivery sent."""
    store = await Store.open(database)
    now = utcnow()
    try:
        async with store.write() as tx:
            await tx.insert_meeting(meeting(now), now=now)
            for n, url in enumerate(urls):
                await tx.save_subscriber(
                    Subscriber(id=f"chat-{n}", notify=(url,), source=Source.API), now=now
                )
        async with ChatChannel(
            timeout=15, threads=threads, allow=[ip_network("127.0.0.1/32")], schemes=DEFAULT_SCHEMES
        ) as chat:
            worker = OutboxWorker(
                store,
                Postman(
                    renderer=Renderer(),
                    email=None,
                    webhook=None,
                    chat=chat,
                    sender="Notifier <notifier@example.org>",
                    public_url="http://127.0.0.1:8080",
                    link_key="bench",
                ),
                policy=RetryPolicy(),
                clock=utcnow,
                batch=500,
                parallel=2,
                concurrency=threads,
            )
            lags: list[float] = []
            monitor = LoopLag(every=0.05, observe=lags.append)
            quit_monitor = asyncio.Event()
            watching = asyncio.create_task(supervise([monitor], quit_monitor))
            started = time.perf_counter()
            await service.apply_status_change(
                store, StatusChange(meeting_id="talks", status=MeetingStatus.CLEARED), now=utcnow()
            )
            # Readers past the change's first chunk, planned as the daemon's expander would.
            while await service.expand_fanout(store, worker="bench", clock=utcnow) is not None:
                pass
            await worker.run_until_idle()
            took = time.perf_counter() - started
            quit_monitor.set()
            await watching
            LAGS.extend(lags)
        async with store.read() as tx:
            stats = await tx.queue_stats(now=utcnow())
        if stats.per_status[DeliveryStatus.SENT] != len(urls):
            raise SystemExit(f"only {stats.per_status[DeliveryStatus.SENT]} sent")
        return took
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    peer, port = start_peer("webhook")
    try:
        urls = [f"json://127.0.0.1:{port}/chat/{n}" for n in range(args.readers)]
        body = "Cleared: the talks wait only on a new time. When: 2 March 2026, 19:00 MSK."
        bare = bare_loop(urls, body)
        with tempfile.TemporaryDirectory() as scratch:
            outbox = asyncio.run(
                through_outbox(f"sqlite+aiosqlite:///{scratch}/chat.db", urls, args.threads)
            )
    finally:
        peer.kill()
    print(f"{'':34}{'seconds':>10}{'per second':>12}")
    print(f"{'bare loop of Apprise notify()':34}{bare:10.2f}{args.readers / bare:12.0f}")
    print(f"{'notifier outbox (notify channel)':34}{outbox:10.2f}{args.readers / outbox:12.0f}")
    print(f"notifier / bare loop, throughput: {bare / outbox:.2f}x ({args.readers} readers)")
    print(f"event loop lag p99 during the outbox run: {p99(LAGS) * 1000:.1f} ms")
    results.add(
        "chat",
        f"chat fan-out, {args.readers:,} readers (Apprise json://), SQLite",
        args.readers / outbox,
        "/s",
        baseline=args.readers / bare,
        baseline_name="bare loop of notify()",
    )
    results.add(
        "chat",
        "event loop lag p99 during the chat fan-out",
        p99(LAGS) * 1000,
        "ms",
        target="< 50 ms",
        met=p99(LAGS) < 0.05,
    )


if __name__ == "__main__":
    main()
