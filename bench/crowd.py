"""100,000 readers per change: one status change to N email readers and to N webhook
readers, through real `notifier run` daemons, on SQLite and on PostgreSQL with one and
three replicas.

For each setup and channel it prints: the time the status push took to be accepted (the
change and its outbox rows are committed before the 202), the time to the first delivery
arriving at the receiver, the total time until every reader had theirs (distinct
webhook-ids / Message-IDs at the receiver), the throughput, the peak resident memory of
the largest daemon process (VmHWM) and the event loop's lag p99 from its /metrics.
Baselines measured in the same run: bare aiohttp loops posting the same count (as many
processes as replicas) and a bare aiosmtplib loop (8 connections) on a sample.

The receivers run in their own processes (bench/peers.py), on loopback.

    .venv/bin/python bench/crowd.py [--readers 100000] [--channels webhook,email]
        [--setups sqlite,pg1,pg3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up
from bench.fanout import bare_aiosmtplib, free_port  # noqa: E402
from bench.lag import p99_from_metrics  # noqa: E402
from bench.replicas import bare_fanout, postgres_database, wait_ready  # noqa: E402
from notifier.compose import utcnow  # noqa: E402
from notifier.domain.models import Source, Subscriber, WebhookEndpoint  # noqa: E402
from notifier.store import Store  # noqa: E402

TOKEN = "bench-token"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SETUPS = {
    "sqlite": ("SQLite, 1 process", 1),
    "pg1": ("PostgreSQL, 1", 1),
    "pg3": ("PostgreSQL, 3", 3),
}


@dataclass
class Peer:
    process: subprocess.Popen[bytes]
    port: int
    stats_port: int


def start_peer(kind: str) -> Peer:
    port = free_port()
    stats = port if kind == "webhook" else free_port()
    command = [sys.executable, str(ROOT / "bench" / "peers.py"), kind, str(port)]
    process = subprocess.Popen(command + ([str(stats)] if kind == "smtp" else []))
    asyncio.run(_until_up(stats))
    return Peer(process, port, stats)


async def _until_up(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(f"http://127.0.0.1:{port}/_stats") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"the receiver on {port} did not start")


def write_config(path: Path, *, hook_port: int, smtp_port: int) -> None:
    path.write_text(
        "\n".join(
            [
                f'api_tokens = ["{TOKEN}"]',
                "[webhooks]",
                'allow_cidrs = ["127.0.0.1/32"]',
                "[api]",
                "rate_per_minute = 1000000",
                "[smtp]",
                'host = "127.0.0.1"',
                f"port = {smtp_port}",
                'sender = "Notifier <notifier@example.org>"',
                "[[meetings]]",
                'id = "talks"',
                'title = "Talks between the presidents of Russia and South Ossetia"',
                'timezone = "Europe/Moscow"',
                'starts_at = "2030-03-02T19:00:00+03:00"',
                'status = "postponed"',
                'reason = "medical reasons"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )


async def seed(database: str, readers: int, channel: str, hook_port: int) -> None:
    """`readers` subscribers of `talks` by `channel`, added in chunks (as an import would)."""
    store = await Store.open(database)
    now = utcnow()
    try:
        for first in range(0, readers, 5000):
            chunk = [
                Subscriber(
                    id=f"r{n}",
                    email=f"reader{n}@example.org" if channel == "email" else None,
                    webhook=WebhookEndpoint(
                        url=f"http://127.0.0.1:{hook_port}/h/{n}", secrets=(SECRET,)
                    )
                    if channel == "webhook"
                    else None,
                    meetings=("talks",),
                    reminders=(),
                    source=Source.API,
                )
                for n in range(first, min(first + 5000, readers))
            ]
            async with store.write() as tx:
                await tx.add_subscribers(chunk, now=now)
    finally:
        await store.close()


@contextmanager
def daemons(database: str, config: Path, count: int) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_CONFIG": str(config),
        "NOTIFIER_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    ports = [free_port() for _ in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for n, port in enumerate(ports):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "notifier", "run"],
                    env=env | {"NOTIFIER_LISTEN": f"127.0.0.1:{port}"},
                    stdout=subprocess.DEVNULL,
                )
            )
            if n == 0:  # the first loads the config file; the others find it done
                asyncio.run(wait_ready(port))
        for port in ports[1:]:
            asyncio.run(wait_ready(port))
        yield processes, ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Run:
    setup: str
    channel: str
    readers: int
    accepted: float
    first: float
    total: float
    rss: float
    lag_p99: float
    baseline: float

    @property
    def rate(self) -> float:
        return self.readers / self.total


async def push_and_wait(api: int, stats_port: int, readers: int) -> tuple[float, float, float]:
    """(push accepted, first delivery, last delivery) in seconds from the push."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(f"http://127.0.0.1:{stats_port}/_reset") as answer:
            assert answer.status == 204
        started = time.time()
        async with session.post(
            f"http://127.0.0.1:{api}/v1/meetings/talks/status",
            json={"status": "cleared", "event_id": uuid.uuid4().hex},
            timeout=aiohttp.ClientTimeout(total=600),
        ) as answer:
            assert answer.status == 202, await answer.text()
        accepted = time.time() - started
        shown = time.monotonic()
        while True:
            async with session.get(f"http://127.0.0.1:{stats_port}/_stats") as answer:
                stats = await answer.json()
            if stats["ids"] >= readers:
                return accepted, stats["first"] - started, time.time() - started
            if time.monotonic() - shown > 10:
                shown = time.monotonic()
                print(f"    {stats['ids']:,} of {readers:,}", file=sys.stderr, flush=True)
            if time.time() - started > 1800:
                raise SystemExit(f"only {stats['ids']} of {readers} arrived in 30 minutes")
            await asyncio.sleep(0.01 if stats["ids"] == 0 else 0.2)


async def lag_p99(ports: list[int]) -> float:
    worst = 0.0
    async with aiohttp.ClientSession() as session:
        for port in ports:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as answer:
                worst = max(worst, p99_from_metrics(await answer.text())[0])
    return worst


def one(setup: str, channel: str, readers: int, *, hook: Peer, smtp: Peer, postgres: str) -> Run:
    label, count = SETUPS[setup]
    print(f"... {label}, {readers:,} {channel} readers", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "notifier.toml"
        write_config(config, hook_port=hook.port, smtp_port=smtp.port)
        context = (
            nullcontext(f"sqlite+aiosqlite:///{scratch}/crowd.db")
            if setup == "sqlite"
            else postgres_database(postgres)
        )
        with context as database:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
            subprocess.run(
                [sys.executable, "-m", "notifier", "db", "upgrade"],
                env=env | {"NOTIFIER_DATABASE_URL": database, "PYTHONPATH": str(ROOT)},
                check=True,
                capture_output=True,
            )
            asyncio.run(seed(database, readers, channel, hook.port))
            with daemons(database, config, count) as (processes, ports):
                stats = hook.stats_port if channel == "webhook" else smtp.stats_port
                accepted, first, total = asyncio.run(push_and_wait(ports[0], stats, readers))
                lag = asyncio.run(lag_p99(ports))
                rss = max(peak_rss_mib(p.pid) for p in processes)
    if channel == "webhook":
        baseline = bare_fanout(hook.port, readers, count)
    else:
        sample = min(readers, 3000)
        baseline = sample / asyncio.run(bare_aiosmtplib(smtp.port, sample))
    return Run(label, channel, readers, accepted, first, total, rss, lag, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--channels", default="webhook,email")
    parser.add_argument("--setups", default="sqlite,pg1,pg3")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "NOTIFIER_TEST_POSTGRES_URL", "postgresql+asyncpg://root@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    hook, smtp = start_peer("webhook"), start_peer("smtp")
    runs: list[Run] = []
    try:
        for setup in args.setups.split(","):
            for channel in args.channels.split(","):
                runs.append(
                    one(setup, channel, args.readers, hook=hook, smtp=smtp, postgres=args.postgres)
                )
    finally:
        hook.process.terminate()
        smtp.process.terminate()
    print(f"\none change to {args.readers:,} readers (seconds from the push; MiB; per second)")
    print(
        f"{'setup':<20}{'channel':<9}{'accepted':>9}{'first':>8}{'total':>8}{'per s':>8}"
        f"{'bare/s':>8}{'ratio':>7}{'peak MiB':>10}{'lag p99':>9}"
    )
    for r in runs:
        print(
            f"{r.setup:<20}{r.channel:<9}{r.accepted:>9.2f}{r.first:>8.2f}{r.total:>8.1f}"
            f"{r.rate:>8.0f}{r.baseline:>8.0f}{r.rate / r.baseline:>7.0%}{r.rss:>10.0f}"
            f"{r.lag_p99 * 1000:>7.0f}ms"
        )
    for r in runs:
        what = f"{r.readers:,} {r.channel} readers, {r.setup}"
        bare = "bare aiohttp loops" if r.channel == "webhook" else "bare aiosmtplib loop"
        results.add("crowd", f"{what}: push accepted", r.accepted, "s")
        results.add(
            "crowd", f"{what}: first delivery", r.first, "s", target="< 1 s", met=r.first < 1
        )
        results.add("crowd", f"{what}: all delivered", r.total, "s")
        results.add(
            "crowd", f"{what}: throughput", r.rate, "/s", baseline=r.baseline, baseline_name=bare
        )
        results.add("crowd", f"{what}: peak RSS", r.rss, "MiB", target="< 300 MiB", met=r.rss < 300)
        results.add(
            "crowd",
            f"{what}: event loop lag p99",
            r.lag_p99 * 1000,
            "ms",
            target="<= 50 ms (histogram bucket)",
            met=r.lag_p99 <= 0.05,
        )
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in runs], indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
