"""Reminder timers at scale: 100,000 pending reminders, 2,000 of them due within 10 s.

For notifier (SQLite store + APScheduler timers mirrored from it) and, as the baseline in
the same run, bare APScheduler holding the same 100,000 date jobs: the time to (re)build
the timers at start-up, the resident memory they take, and the lateness (fired - due) of
the 2,000 that come due, p50 / p99 / max. Each side runs in its own process.

    .venv/bin/python bench/reminders.py [--total 100000] [--due 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def due_times(total: int, due: int, now: datetime) -> list[datetime]:
    rng = random.Random(7)
    soon = [now + timedelta(seconds=rng.uniform(4, 10)) for _ in range(due)]
    later = [now + timedelta(days=rng.uniform(1, 30)) for _ in range(total - due)]
    return soon + later


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


async def bare(total: int, due: int) -> dict[str, object]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.date import DateTrigger

    now = datetime.now(UTC)
    times = sorted(due_times(total, due, now))
    lateness: list[float] = []
    done = asyncio.Event()

    async def fire(at: datetime) -> None:
        lateness.append((datetime.now(UTC) - at).total_seconds())
        if len(lateness) == due:
            done.set()

    before = rss_mib()
    started = time.perf_counter()
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None})
    for n, at in enumerate(times):
        scheduler.add_job(fire, DateTrigger(run_date=at), args=[at], id=str(n))
    scheduler.start()
    rebuild = time.perf_counter() - started
    memory = rss_mib() - before
    await asyncio.wait_for(done.wait(), 60)
    scheduler.shutdown(wait=False)
    return {"rebuild_s": rebuild, "rss_mib": memory, **percentiles(lateness)}


async def notifier_side(total: int, due: int) -> dict[str, object]:
    from sqlalchemy import insert

    from notifier.compose import utcnow
    from notifier.domain.models import Meeting, MeetingStatus, Source, Subscriber
    from notifier.scheduler import Scheduler
    from notifier.store import Store
    from notifier.store.tables import reminders

    meetings_count = max(total // 1000, 1)
    per_meeting = total // meetings_count
    with tempfile.TemporaryDirectory() as scratch:
        store = await Store.open(f"sqlite+aiosqlite:///{scratch}/reminders.db")
        now = utcnow()
        async with store.write() as tx:
            for m in range(meetings_count):
                await tx.insert_meeting(
                    Meeting(
                        id=f"m{m}",
                        title="Talks",
                        timezone="UTC",
                        starts_at=now + timedelta(days=40),
                        status=MeetingStatus.CONFIRMED,
                        source=Source.API,
                    ),
                    now=now,
                )
            for s in range(per_meeting):
                await tx.save_subscriber(
                    Subscriber(
                        id=f"s{s}",
                        email=f"s{s}@example.org",
                        reminders=(timedelta(hours=1),),
                        source=Source.API,
                    ),
                    now=now,
                )
        times = due_times(total, due, utcnow())
        rows = [
            {
                "meeting_id": f"m{n // per_meeting}",
                "subscriber_id": f"s{n % per_meeting}",
                "offset_seconds": 3600,
                "due_at": times[n],
                "sequence": 0,
                "state": "pending",
            }
            for n in range(total)
        ]
        async with store.write() as tx:
            await tx.connection.execute(insert(reminders), rows)
            await tx.touch_reminders()
        before = rss_mib()
        started = time.perf_counter()
        # As the daemon runs it: timers only for the near horizon (reminders.horizon).
        scheduler = Scheduler(
            store, clock=utcnow, grace=timedelta(minutes=10), horizon=timedelta(minutes=10)
        )
        await scheduler.start()
        rebuild = time.perf_counter() - started
        memory = rss_mib() - before
        deadline = time.monotonic() + 60
        fired_count = 0
        while fired_count < due and time.monotonic() < deadline:
            fired_count = scheduler.fired.get("fired", 0) + scheduler.fired.get("late", 0)
            await asyncio.sleep(0.2)
        scheduler.shutdown()
        async with store.read() as tx:
            fired = [
                r
                for r in [await tx.reminder(i + 1) for i in range(due)]
                if r is not None and r.fired_at is not None
            ]
        await store.close()
    if len(fired) != due:
        raise SystemExit(f"only {len(fired)} of {due} reminders fired: {scheduler.fired}")
    lateness = [(r.fired_at - r.due_at).total_seconds() for r in fired if r.fired_at]
    return {"rebuild_s": rebuild, "rss_mib": memory, **percentiles(lateness)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=2_000)
    parser.add_argument("--side", choices=["bare", "notifier"])
    args = parser.parse_args()
    if args.side:
        run = bare if args.side == "bare" else notifier_side
        print(json.dumps(asyncio.run(run(args.total, args.due))))
        return
    sides = {}
    for side in ("bare", "notifier"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--side",
                side,
                "--total",
                str(args.total),
                "--due",
                str(args.due),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        sides[side] = json.loads(out.strip().splitlines()[-1])
    bare_r, ours = sides["bare"], sides["notifier"]
    print(f"{args.total} pending reminders, {args.due} due within 10 s")
    print(f"{'':28}{'bare APScheduler':>18}{'notifier':>12}{'ratio':>9}")
    for key, label, unit in (
        ("rebuild_s", "rebuild at start-up", "s"),
        ("rss_mib", "resident memory added", "MiB"),
        ("p50", "lateness p50", "s"),
        ("p99", "lateness p99", "s"),
        ("max", "lateness max", "s"),
    ):
        b, n = float(bare_r[key]), float(ours[key])
        ratio = f"{n / b:.2f}x" if b > 0 else "-"
        print(f"{label + ' (' + unit + ')':28}{b:>18.3f}{n:>12.3f}{ratio:>9}")
        target, met = {
            "rebuild_s": ("<= 1/4 of bare", n <= b / 4),
            "rss_mib": ("<= 1/4 of bare", n <= b / 4),
            "p99": ("<= 0.05 s", n <= 0.05),
        }.get(key, ("", None))
        results.add(
            "reminders",
            f"{args.total:,} pending, {args.due:,} due in 10 s: {label}",
            n,
            unit,
            baseline=b,
            baseline_name="bare APScheduler",
            target=target,
            met=met,
        )


if __name__ == "__main__":
    main()
