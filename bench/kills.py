"""kill -9 at scale (checklist 11 and 12), too long for CI, run here as a bench.

- ``fanout``: one `notifier run` on SQLite, one change to 10,000 webhook readers, the daemon
  killed with SIGKILL at three random points of the fan-out and started again each time.
  Lost must be 0; repeats at most what was in flight at each kill (batch x parallel), each
  with the webhook-id the reader got first.
- ``reminders``: three replicas on PostgreSQL, 10,000 reminders due in the same second, the
  scheduler leader killed with SIGKILL as the first ones arrive. Each reminder must fire
  exactly once (one delivery id per reader); repeats of a delivery at most what the dead
  replica had in flight.

Each prints its counts and records them (``bench/results.py``).

    .venv/bin/python bench/kills.py fanout [--readers 10000] [--seed N]
    .venv/bin/python bench/kills.py reminders --postgres URL [--readers 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from tests.e2e.test_crash import cli, start_daemon, wait_for  # noqa: E402
from tests.integration.conftest import SECRET  # noqa: E402
from tests.integration.peers import Receiver, free_port  # noqa: E402

BATCH, PARALLEL = 200, 2
REMINDER = "meeting.reminder"


def config(receiver: Receiver, readers: int, *, meeting: list[str], extra: list[str]) -> str:
    lines = [
        'api_tokens = ["bench-token"]',
        "[smtp]",
        'timeout = "2s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "5s"',
        "[delivery]",
        f"batch = {BATCH}",
        f"parallel = {PARALLEL}",
        "concurrency = 32",
        'lease = "6s"',
        'poll = "1s"',
        *extra,
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        *meeting,
    ]
    for n in range(readers):
        lines += [
            "[[subscribers]]",
            f'id = "r{n:05d}"',
            f'webhook = {{ url = "{receiver.url(f"/h/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    return "\n".join(lines) + "\n"


def environment(folder: Path, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return env | {
        "NOTIFIER_DATABASE_URL": database,
        "NOTIFIER_CONFIG": str(folder / "notifier.toml"),
        "NOTIFIER_LISTEN": f"127.0.0.1:{free_port()}",
        "PYTHONPATH": str(ROOT),
    }


def tally(
    receiver: Receiver, kind: str = "meeting.cleared"
) -> tuple[Counter[str], dict[str, set[str]]]:
    """Arrivals of `kind` per webhook-id, and the ids each reader's path got."""
    ids: Counter[str] = Counter()
    per_path: dict[str, set[str]] = {}
    for hit in receiver.hits:
        if hit.verified is not None and hit.verified.get("type") == kind:
            ids[hit.headers["webhook-id"]] += 1
            per_path.setdefault(hit.path, set()).add(hit.headers["webhook-id"])
    return ids, per_path


async def fanout(readers: int, seed: int) -> None:
    rng = random.Random(seed)
    receiver = await Receiver(secrets=[SECRET], delay=0.005).start()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        env = environment(folder, f"sqlite+aiosqlite:///{folder / 'notifier.db'}")
        (folder / "notifier.toml").write_text(
            config(
                receiver,
                readers,
                meeting=['starts_at = "2030-03-02T19:00:00+03:00"', 'status = "postponed"'],
                extra=[],
            ),
            encoding="utf-8",
        )
        daemon = await start_daemon(env, folder)
        code, out = await cli(env, folder, "event", "talks", "cleared", "--reason", "bench")
        assert code == 0, out
        started = time.monotonic()
        kills = sorted(rng.uniform(0.05, 0.95) for _ in range(3))
        repeats_allowed = 0
        try:
            for point in kills:
                await wait_for(lambda p=point: len(tally(receiver)[0]) >= p * readers, 600)
                daemon.send_signal(signal.SIGKILL)
                await daemon.wait()
                repeats_allowed += BATCH * PARALLEL
                print(f"killed at {len(tally(receiver)[0])} of {readers} delivered", flush=True)
                daemon = await start_daemon(env, folder)
            await wait_for(lambda: len(tally(receiver)[0]) >= readers, 900)
            await asyncio.sleep(3)  # anything sent twice would have arrived by now
        finally:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
    took = time.monotonic() - started
    ids, per_path = tally(receiver)
    await receiver.stop()
    lost = readers - len(per_path)
    repeats = sum(count - 1 for count in ids.values())
    two_ids = sum(1 for got in per_path.values() if len(got) > 1)
    print(
        f"{readers} readers, 3 kills (seed {seed}) in {took:.0f} s: lost {lost}, "
        f"repeated {repeats} (bound {repeats_allowed}), readers with two ids {two_ids}"
    )
    results.add("kills", "fan-out kill -9 x3: deliveries lost", lost, "", target="0", met=lost == 0)
    results.add(
        "kills",
        "fan-out kill -9 x3: repeats (bound: in flight)",
        repeats,
        "",
        baseline=repeats_allowed,
        baseline_name="batch x parallel x kills",
        target="<= in flight, same id",
        met=repeats <= repeats_allowed and two_ids == 0,
    )


async def reminders(readers: int, postgres: str) -> None:
    from tests.conftest import _truncate

    await _truncate(postgres)
    receiver = await Receiver(secrets=[SECRET], delay=0.002).start()
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    starts = due + timedelta(minutes=10)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        text = config(
            receiver,
            readers,
            meeting=[f'starts_at = "{starts.isoformat()}"', 'status = "confirmed"'],
            extra=["[leader]", 'lease = "4s"', 'renew = "1s"'],
        )
        text = text.replace("[[subscribers]]\n", '[[subscribers]]\nreminders = ["10m"]\n')
        (folder / "notifier.toml").write_text(text, encoding="utf-8")
        replicas = []
        for _ in range(3):
            env = environment(folder, postgres)
            replicas.append((await start_daemon(env, folder), env["NOTIFIER_LISTEN"]))
        print(f"3 replicas up; {readers} reminders due at {due:%H:%M:%S} UTC", flush=True)
        killed = None
        try:
            await wait_for(lambda: tally(receiver, REMINDER)[0], 180, "the first reminder")
            async with httpx.AsyncClient(timeout=5) as client:
                for process, listen in replicas:
                    health = (await client.get(f"http://{listen}/healthz")).json()
                    if health["leader"]["leading"]:
                        process.send_signal(signal.SIGKILL)
                        await process.wait()
                        killed = listen
            print(f"killed the leader ({killed}) at {len(tally(receiver, REMINDER)[0])} reminders")
            await wait_for(lambda: len(tally(receiver, REMINDER)[1]) >= readers, 600)
            await asyncio.sleep(5)
        finally:
            for process, _ in replicas:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await process.wait()
    ids, per_path = tally(receiver, REMINDER)
    await receiver.stop()
    missing = readers - len(per_path)
    twice = sum(1 for got in per_path.values() if len(got) > 1)
    repeats = sum(count - 1 for count in ids.values())
    print(
        f"{readers} reminders, leader killed: missing {missing}, fired twice {twice}, "
        f"deliveries repeated {repeats} (bound {BATCH * PARALLEL})"
    )
    results.add(
        "kills",
        "3 replicas, 10,000 reminders in one second, leader killed: fired twice or missing",
        missing + twice,
        "",
        target="0",
        met=missing + twice == 0 and killed is not None,
    )
    results.add(
        "kills",
        "3 replicas, leader killed: repeated deliveries (bound: in flight)",
        repeats,
        "",
        baseline=BATCH * PARALLEL,
        baseline_name="batch x parallel",
        target="<= in flight",
        met=repeats <= BATCH * PARALLEL,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["fanout", "reminders"])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--postgres", default=os.environ.get("NOTIFIER_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    if args.scenario == "fanout":
        await fanout(args.readers, args.seed)
    else:
        if not args.postgres:
            raise SystemExit("reminders needs --postgres URL (or NOTIFIER_TEST_POSTGRES_URL)")
        await reminders(args.readers, args.postgres)


if __name__ == "__main__":
    asyncio.run(main())
