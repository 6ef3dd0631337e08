"""The daemon end to end: fan-out on SQLite and on PostgreSQL with 1 and 3 replicas, and the
latency from a status push to the webhook arriving at 5 to 400 changes a second.

Every figure runs real `notifier run` processes against a receiver in its own process, and
is printed next to a bare baseline measured in the same run (the machine is shared and
noisy, so only the ratios mean much):

- fan-out: one status change pushed over HTTP to N webhook readers, timed from the push
  until the receiver has N distinct webhook-ids; baseline: bare aiohttp loops (64
  concurrent each) posting the same count, in as many processes as there are replicas;
- latency: changes pushed over HTTP at a steady rate to one reader, from the push being
  sent to its webhook arriving; baseline: a bare relay (aiohttp in, aiohttp out, no
  storage) driven the same way.

    .venv/bin/python bench/replicas.py [--webhooks 5000] [--postgres URL] [--seconds 5]
        [--loads 5,10,50,100,200,400] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up
from bench.fanout import bare_aiohttp, free_port, start_peer  # noqa: E402
from tests.conftest import _admin  # noqa: E402

TOKEN = "bench-token"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MEETINGS = 20


def write_config(path: Path, hook_port: int, hooks: int) -> None:
    """A meeting `talks` with `hooks` readers, and MEETINGS meetings with a reader each."""
    lines = [
        f'api_tokens = ["{TOKEN}"]',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        "[api]",
        "rate_per_minute = 1000000",
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        'starts_at = "2030-03-02T19:00:00+03:00"',
        'status = "postponed"',
    ]
    for m in range(MEETINGS):
        lines += [
            "[[meetings]]",
            f'id = "m{m}"',
            f'title = "Meeting {m}"',
            'timezone = "Europe/Moscow"',
            'starts_at = "2030-03-02T19:00:00+03:00"',
            'status = "postponed"',
        ]
    for m in range(MEETINGS):
        lines += [
            "[[subscribers]]",
            f'id = "latency-{m}"',
            f'meetings = ["m{m}"]',
            f'webhook = {{ url = "http://127.0.0.1:{hook_port}/lat/{m}", secrets = ["{SECRET}"] }}',
        ]
    for n in range(hooks):
        lines += [
            "[[subscribers]]",
            f'id = "hook-{n}"',
            'meetings = ["talks"]',
            f'webhook = {{ url = "http://127.0.0.1:{hook_port}/h/{n}", secrets = ["{SECRET}"] }}',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Daemons:
    """`notifier run` processes on one database, each on its own port."""

    processes: list[subprocess.Popen[bytes]]
    ports: list[int]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def daemons(database: str, config: Path, count: int) -> Iterator[Daemons]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_CONFIG": str(config),
        "NOTIFIER_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    notifier = [sys.executable, "-m", "notifier"]
    subprocess.run([*notifier, "db", "upgrade"], env=env, check=True, capture_output=True)
    # The first replica loads the config file into the database; the others find it there.
    ports = [free_port() for _ in range(count)]
    started = Daemons([], ports)
    try:
        for n, port in enumerate(ports):
            started.processes.append(
                subprocess.Popen(
                    [*notifier, "run"],
                    env=env | {"NOTIFIER_LISTEN": f"127.0.0.1:{port}"},
                    stdout=subprocess.DEVNULL,
                )
            )
            if n == 0:
                asyncio.run(wait_ready(port))
        for port in ports[1:]:
            asyncio.run(wait_ready(port))
        yield started
    finally:
        started.stop()


async def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"the daemon on port {port} did not become ready")


async def receiver(session: aiohttp.ClientSession, hook_port: int, what: str) -> object:
    async with session.get(f"http://127.0.0.1:{hook_port}/_{what}") as answer:
        return await answer.json()


async def reset(session: aiohttp.ClientSession, hook_port: int) -> None:
    async with session.post(f"http://127.0.0.1:{hook_port}/_reset") as answer:
        assert answer.status == 204


async def fanout(api_port: int, hook_port: int, count: int) -> float:
    """Push one change and time it until `count` webhooks arrived; deliveries per second."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        await reset(session, hook_port)
        started = time.perf_counter()
        async with session.post(
            f"http://127.0.0.1:{api_port}/v1/meetings/talks/status",
            json={"status": "cleared", "event_id": uuid.uuid4().hex},
        ) as answer:
            assert answer.status == 202, await answer.text()
        while True:
            stats = await receiver(session, hook_port, "stats")
            assert isinstance(stats, dict)
            if stats["ids"] >= count:
                return count / (time.perf_counter() - started)
            if time.perf_counter() - started > 300:
                raise SystemExit(f"only {stats['ids']} of {count} webhooks arrived in 300s")
            await asyncio.sleep(0.02)


def bare_loop(hook_port: int, first: int, count: int) -> None:
    """One baseline sender process: prints when it started and ended sending (epoch
    seconds), so process start-up and imports are not counted against it."""
    body = json.dumps({"type": "meeting.cleared", "data": {"sequence": 1}}).encode()
    started = time.time()
    took = asyncio.run(bare_aiohttp(hook_port, count, body, first=first))
    print(json.dumps([started, started + took]), flush=True)


def bare_fanout(hook_port: int, count: int, processes: int) -> float:
    """The same count through `processes` bare loops at once; deliveries per second."""
    asyncio.run(_reset(hook_port))
    share = count // processes
    running = [
        subprocess.Popen(
            [sys.executable, __file__, "--bare-loop", str(hook_port), str(n * share), str(share)],
            stdout=subprocess.PIPE,
        )
        for n in range(processes)
    ]
    spans = []
    for process in running:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit("a bare loop failed")
        spans.append(json.loads(out))
    return share * processes / (max(end for _, end in spans) - min(start for start, _ in spans))


async def _reset(hook_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        await reset(session, hook_port)


async def latency(api_ports: list[int], hook_port: int, rate: float, seconds: float) -> list[float]:
    """Push `rate` changes a second for `seconds` (spread over the replicas and MEETINGS
    meetings, postponed and cleared in turn); each change's push-to-webhook seconds."""
    auth = {"authorization": f"Bearer {TOKEN}"}
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession(
        headers=auth, connector=aiohttp.TCPConnector(limit=256)
    ) as session:
        await reset(session, hook_port)
        sequence = {m: 0 for m in range(MEETINGS)}
        status = {m: "postponed" for m in range(MEETINGS)}
        for m in range(MEETINGS):  # the current sequence of every meeting
            port = api_ports[0]
            async with session.get(f"http://127.0.0.1:{port}/v1/meetings/m{m}") as answer:
                found = await answer.json()
                sequence[m], status[m] = found["sequence"], found["status"]

        async def push(n: int) -> None:
            m = n % MEETINGS
            sequence[m] += 1
            status[m] = "cleared" if status[m] == "postponed" else "postponed"
            key = f"m{m}/{sequence[m]}"
            port = api_ports[n % len(api_ports)]
            sent[key] = time.time()
            async with session.post(
                f"http://127.0.0.1:{port}/v1/meetings/m{m}/status", json={"status": status[m]}
            ) as answer:
                assert answer.status == 202, await answer.text()

        total = int(rate * seconds)
        started = time.monotonic()
        tasks = []
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(push(n)))
            if len(tasks) % MEETINGS == 0:  # a meeting's next change waits for its last one
                await asyncio.gather(*tasks[-MEETINGS:])
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            arrived = await receiver(session, hook_port, "arrivals")
            assert isinstance(arrived, dict)
            if len(arrived) >= total:
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"only {len(arrived)} of {total} changes arrived")
    return [arrived[key] - at for key, at in sent.items()]


def relay(port: int, hook_port: int) -> None:
    """The latency baseline: accept a status push, answer 202, post a webhook (no storage)."""
    from aiohttp import web

    sequences: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def forward(session: aiohttp.ClientSession, meeting: str, sequence: int) -> None:
        body = json.dumps({"data": {"meeting": {"id": meeting}, "sequence": sequence}})
        url = f"http://127.0.0.1:{hook_port}/lat/{meeting.removeprefix('m')}"
        async with session.post(url, data=body) as answer:
            await answer.read()

    async def status(request: web.Request) -> web.Response:
        meeting = request.match_info["meeting"]
        await request.json()
        sequences[meeting] = sequences.get(meeting, 0) + 1
        task = asyncio.create_task(forward(request.app["session"], meeting, sequences[meeting]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.json_response({}, status=202)

    async def meeting(request: web.Request) -> web.Response:
        name = request.match_info["meeting"]
        return web.json_response({"sequence": sequences.get(name, 0), "status": "postponed"})

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({})

    async def session(app: web.Application) -> object:
        app["session"] = aiohttp.ClientSession()
        yield
        await app["session"].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/meetings/{meeting}/status", status)
    app.router.add_get("/v1/meetings/{meeting}", meeting)
    app.router.add_get("/readyz", readyz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on `server`, dropped afterwards."""
    name = f"notifier_bench_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        raise SystemExit(
            f"PostgreSQL at {make_url(server).render_as_string()} is unreachable ({exc}); "
            "start it, or name another server with --postgres"
        ) from exc
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5, help="length of each latency run")
    parser.add_argument(
        "--loads",
        default="5,10,50,100,200,400",
        help="status changes a second for the latency runs (comma-separated)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "NOTIFIER_TEST_POSTGRES_URL", "postgresql+asyncpg://root@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL server URL; each setup gets a fresh database there",
    )
    parser.add_argument("--bare-loop", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(*args.bare_loop)
        return

    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    hook_peer, hook_port = start_peer("webhook")
    relay_port = free_port()
    relay_peer = subprocess.Popen(
        [sys.executable, __file__, "--relay", str(relay_port), str(hook_port)]
    )
    fan: list[tuple[str, float, float, int]] = []
    lat: list[tuple[str, str, list[float], list[float]]] = []
    try:
        asyncio.run(wait_ready(relay_port))
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "notifier.toml"
            write_config(config, hook_port, args.webhooks)
            setups = [
                ("SQLite, 1 process", f"sqlite+aiosqlite:///{scratch}/bench.db", 1),
                ("PostgreSQL, 1 replica", None, 1),
                ("PostgreSQL, 3 replicas", None, 3),
            ]
            for label, database, count in setups:
                print(f"... {label}", file=sys.stderr, flush=True)
                with (
                    (
                        postgres_database(args.postgres) if database is None else _same(database)
                    ) as url,
                    daemons(url, config, count) as running,
                ):
                    rate = asyncio.run(fanout(running.ports[0], hook_port, args.webhooks))
                    bare = bare_fanout(hook_port, args.webhooks, count)
                    fan.append((label, rate, bare, count))
                    if count == 3 and label.startswith("PostgreSQL"):
                        continue
                    for load in loads:
                        samples = asyncio.run(latency(running.ports, hook_port, load, args.seconds))
                        baseline = asyncio.run(latency([relay_port], hook_port, load, args.seconds))
                        lat.append((label, f"{load:.0f} changes/s", samples, baseline))
    finally:
        relay_peer.terminate()
        hook_peer.terminate()

    print(f"\nfan-out: one change to {args.webhooks} webhook readers (deliveries per second)")
    print(f"{'setup':<24}{'notifier':>10}{'bare':>10}  ratio")
    for label, rate, bare, count in fan:
        loops = f"{count} bare loop{'s' if count > 1 else ''}"
        print(f"{label:<24}{rate:>10.0f}{bare:>10.0f}  notifier = {rate / bare:.0%} of {loops}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "fanout": [
                        {"setup": label, "rate": rate, "bare": bare, "processes": count}
                        for label, rate, bare, count in fan
                    ],
                    "latency": [
                        {
                            "setup": label,
                            "load": load,
                            "p50": percentiles(samples)[0],
                            "p99": percentiles(samples)[1],
                            "bare_p50": percentiles(baseline)[0],
                            "bare_p99": percentiles(baseline)[1],
                        }
                        for label, load, samples, baseline in lat
                    ],
                },
                indent=2,
            )
        )
    for label, rate, bare, count in fan:
        results.add(
            "replicas",
            f"daemon fan-out, {args.webhooks:,} readers, {label}",
            rate,
            "/s",
            baseline=bare,
            baseline_name=f"{count} bare loop{'s' if count > 1 else ''}",
        )
    targets = {5.0: 0.05, 200.0: 0.1}
    for label, load, samples, baseline in lat:
        rate = float(load.split()[0])
        _, p99 = percentiles(samples)
        limit = targets.get(rate)
        results.add(
            "replicas",
            f"push-to-webhook p99, {label}, {load}",
            p99 * 1000,
            "ms",
            baseline=percentiles(baseline)[1] * 1000,
            baseline_name="bare relay",
            target=f"<= {limit * 1000:.0f} ms" if limit else "",
            met=p99 <= limit if limit else None,
        )
    print("\nlatency: status push sent -> webhook received (milliseconds)")
    print(
        f"{'setup':<24}{'load':<16}{'p50':>8}{'p99':>8}{'bare p50':>10}{'bare p99':>10}  p50 ratio"
    )
    for label, load, samples, baseline in lat:
        p50, p99 = percentiles(samples)
        b50, b99 = percentiles(baseline)
        print(
            f"{label:<24}{load:<16}{p50 * 1000:>8.1f}{p99 * 1000:>8.1f}"
            f"{b50 * 1000:>10.1f}{b99 * 1000:>10.1f}  {p50 / b50:.1f}x"
        )


@contextmanager
def _same(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if len(sys.argv) == 4 and sys.argv[1] == "--relay":
        relay(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
