"""Fan-out throughput: one status change to N webhook and M email subscribers.

Each figure is printed next to baselines measured in the same run on the same receivers
(the machine is shared and noisy, so only the ratios mean much):

- webhooks: notifier's outbox worker vs a bare aiohttp loop (64 concurrent, same body)
  and Apprise (json://);
- email: notifier vs a bare aiosmtplib loop (8 reused connections, the same multipart
  message built with the stdlib for every recipient) and Apprise (mailto://).

    .venv/bin/python bench/fanout.py [--webhooks 5000] [--emails 2000] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from ipaddress import ip_network
from pathlib import Path

import aiohttp
import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from notifier import service  # noqa: E402
from notifier.calendar import build_ics  # noqa: E402
from notifier.channels.email import EmailChannel  # noqa: E402
from notifier.channels.webhook import WebhookChannel  # noqa: E402
from notifier.compose import utcnow  # noqa: E402
from notifier.delivery import OutboxWorker, Postman  # noqa: E402
from notifier.domain.models import (  # noqa: E402
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
    WebhookEndpoint,
)
from notifier.domain.outbox import DeliveryStatus  # noqa: E402
from notifier.domain.retry import RetryPolicy  # noqa: E402
from notifier.rendering import Renderer  # noqa: E402
from notifier.store import Store  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_peer(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "peers.py"), kind, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the {kind} peer did not start")


def meeting(now: datetime) -> Meeting:
    return Meeting(
        id="talks",
        title="Talks between the presidents of Russia and South Ossetia",
        description="Trade facilitation, investment, infrastructure, public services.",
        location="Moscow, Kremlin",
        participants=("President of Russia", "President of South Ossetia"),
        timezone="Europe/Moscow",
        starts_at=now + timedelta(days=3),
        status=MeetingStatus.POSTPONED,
        reason="medical reasons",
        tags=("bilateral",),
        source=Source.API,
    )


async def notifier_fanout(
    database: str, subscribers: list[Subscriber], *, smtp_port: int
) -> tuple[float, float, int]:
    """(seconds to accept the change and enqueue, seconds to deliver, deliveries)."""
    store = await Store.open(database)
    now = utcnow()
    try:
        async with store.write() as tx:
            await tx.insert_meeting(meeting(now), now=now)
            for subscriber in subscribers:
                await tx.save_subscriber(subscriber, now=now)
        started = time.perf_counter()
        result = await service.apply_status_change(
            store, StatusChange(meeting_id="talks", status=MeetingStatus.CLEARED), now=utcnow()
        )
        queued = result.deliveries
        # Readers past the change's first chunk ([delivery] fanout_chunk), planned as the
        # daemon's expander would.
        while (
            more := await service.expand_fanout(store, worker="bench", clock=utcnow)
        ) is not None:
            queued += more
        enqueued = time.perf_counter() - started
        async with (
            WebhookChannel(timeout=15, allow=[ip_network("127.0.0.1/32")], concurrency=64) as hook,
            EmailChannel(host="127.0.0.1", port=smtp_port, pool_size=8) as mail,
        ):
            worker = OutboxWorker(
                store,
                Postman(
                    renderer=Renderer(),
                    email=mail,
                    webhook=hook,
                    sender="Notifier <notifier@example.org>",
                    public_url="http://127.0.0.1:8080",
                    link_key="bench",
                ),
                policy=RetryPolicy(),
                clock=utcnow,
                # The daemon's defaults ([delivery] batch, parallel, concurrency): one
                # batch is claimed and read while another is sending.
                batch=500,
                parallel=2,
                concurrency=64,
            )
            started = time.perf_counter()
            await worker.run_until_idle()
            delivered = time.perf_counter() - started
        async with store.read() as tx:
            stats = await tx.queue_stats(now=utcnow())
        sent = stats.per_status[DeliveryStatus.SENT]
        if sent != queued:
            raise SystemExit(f"only {sent} of {queued} deliveries were sent")
        return enqueued, delivered, queued
    finally:
        await store.close()


async def bare_aiohttp(port: int, count: int, body: bytes, *, first: int = 0) -> float:
    """The baseline sender: POST `body` to /h/first .. /h/first+count-1, 64 at a time, each
    with its own webhook-id; returns the seconds it took."""
    limit = asyncio.Semaphore(64)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def one(n: int) -> None:
            async with (
                limit,
                session.post(
                    f"http://127.0.0.1:{port}/h/{n}",
                    data=body,
                    headers={"content-type": "application/json", "webhook-id": f"bare-{n}"},
                ) as response,
            ):
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(first, first + count)))
        return time.perf_counter() - started


def stdlib_message(n: int, now: datetime) -> bytes:
    m = meeting(now)
    message = EmailMessage()
    message["From"] = "Notifier <notifier@example.org>"
    message["To"] = f"reader{n}@example.org"
    message["Subject"] = f"Cleared: {m.title}"
    message["Message-ID"] = f"<bench{n}@example.org>"
    text = f"The barrier to the meeting has been cleared.\n\n{m.title}\n{m.description}\n" * 3
    message.set_content(text)
    message.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    message.add_alternative(
        build_ics(m, organizer="notifier@example.org", domain="example.org", now=now),
        maintype="text",
        subtype="calendar",
        params={"method": "REQUEST"},
    )
    return message.as_bytes()


async def bare_aiosmtplib(port: int, count: int) -> float:
    now = utcnow()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def connection() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            while not queue.empty():
                n = queue.get_nowait()
                await client.sendmail(
                    "notifier@example.org", [f"r{n}@example.org"], stdlib_message(n, now)
                )

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(8)))
    return time.perf_counter() - started


def apprise_rate(urls: list[str], body: str) -> float:
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        notifier.add(url)
    started = time.perf_counter()
    if not notifier.notify(title="Cleared", body=body):
        raise SystemExit("Apprise reported a failure")
    return len(urls) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--apprise", type=int, default=500, help="targets sent through Apprise")
    parser.add_argument(
        "--database", help="an empty database URL for the webhook half (default: SQLite)"
    )
    parser.add_argument(
        "--postgres",
        help="run the webhook half on a fresh database of this PostgreSQL server",
    )
    args = parser.parse_args()
    if args.postgres:
        from bench.replicas import postgres_database  # here: replicas imports this module

        with postgres_database(args.postgres) as url:
            args.database = url
            run(args, "PostgreSQL")
    else:
        run(args, "SQLite" if not args.database else args.database.split("+")[0])


def run(args: argparse.Namespace, where: str) -> None:
    """Both halves, printed as one table and recorded (bench/results.py)."""

    hook_peer, hook_port = start_peer("webhook")
    smtp_peer, smtp_port = start_peer("smtp")
    rows: list[tuple[str, float, str]] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            database = args.database or f"sqlite+aiosqlite:///{scratch}/bench.db"
            hooks = [
                Subscriber(
                    id=f"hook-{n}",
                    webhook=WebhookEndpoint(
                        url=f"http://127.0.0.1:{hook_port}/h/{n}", secrets=(SECRET,)
                    ),
                    source=Source.API,
                )
                for n in range(args.webhooks)
            ]
            body = json.dumps(
                {"type": "meeting.cleared", "data": {"meeting": meeting(utcnow()).to_dict()}}
            ).encode()
            # The baseline runs before and after notifier and the two are averaged: the
            # machine is shared, and one baseline alone moves the ratio by tens of percent.
            bare_before = args.webhooks / asyncio.run(bare_aiohttp(hook_port, args.webhooks, body))
            enq, took, count = asyncio.run(notifier_fanout(database, hooks, smtp_port=smtp_port))
            hook_rate = count / took
            bare_after = args.webhooks / asyncio.run(bare_aiohttp(hook_port, args.webhooks, body))
            bare_rate = (bare_before + bare_after) / 2
            results.add(
                "fanout",
                f"webhook fan-out, {count:,} readers, {where}",
                hook_rate,
                "/s",
                baseline=bare_rate,
                baseline_name="bare aiohttp loop",
                target=">= 70% of bare",
                met=hook_rate >= 0.7 * bare_rate,
            )
            apprise_hooks = apprise_rate(
                [f"json://127.0.0.1:{hook_port}/a/{n}" for n in range(args.apprise)], body.decode()
            )
            rows += [
                (f"notifier webhooks ({count}, enqueue {enq:.2f}s)", hook_rate, ""),
                (
                    f"bare aiohttp loop, 64 concurrent ({bare_before:.0f}, {bare_after:.0f})",
                    bare_rate,
                    f"notifier = {hook_rate / bare_rate:.0%} of it",
                ),
                (
                    f"Apprise json:// ({args.apprise})",
                    apprise_hooks,
                    f"notifier = {hook_rate / apprise_hooks:.1f}x",
                ),
            ]
        with tempfile.TemporaryDirectory() as scratch:
            if not args.emails:
                return
            database = f"sqlite+aiosqlite:///{scratch}/mail.db"
            mails = [
                Subscriber(id=f"mail-{n}", email=f"reader{n}@example.org", source=Source.API)
                for n in range(args.emails)
            ]
            enq, took, count = asyncio.run(notifier_fanout(database, mails, smtp_port=smtp_port))
            mail_rate = count / took
            bare_mail = args.emails / asyncio.run(bare_aiosmtplib(smtp_port, args.emails))
            results.add(
                "fanout",
                f"email fan-out, {count:,} readers, SQLite",
                mail_rate,
                "/s",
                baseline=bare_mail,
                baseline_name="bare aiosmtplib loop",
            )
            apprise_mail = apprise_rate(
                [
                    f"mailto://127.0.0.1:{smtp_port}?to=r{n}@example.org"
                    f"&from=notifier@example.org&mode=insecure"
                    for n in range(args.apprise // 5)
                ],
                "The barrier to the meeting has been cleared.",
            )
            rows += [
                (f"notifier email ({count}, enqueue {enq:.2f}s)", mail_rate, ""),
                (
                    "bare aiosmtplib loop, 8 connections",
                    bare_mail,
                    f"notifier = {mail_rate / bare_mail:.2f}x",
                ),
                (
                    f"Apprise mailto:// ({args.apprise // 5})",
                    apprise_mail,
                    f"notifier = {mail_rate / apprise_mail:.1f}x",
                ),
            ]
    finally:
        hook_peer.terminate()
        smtp_peer.terminate()
        show(rows)


def show(rows: list[tuple[str, float, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'per second':>10}  ratio")
    for name, rate, ratio in rows:
        print(f"{name:<{width}}  {rate:>10.0f}  {ratio}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
