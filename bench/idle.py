"""An idle daemon's memory over time: `notifier run` on SQLite with the seed's kind of
config and nothing to do, its resident memory (VmRSS) sampled from the start-up line to
the end. An idle daemon must not grow (the fan-out expander used to leave two waiting
tasks a poll: ~80 MB a day at the default 1 s).

    .venv/bin/python bench/idle.py [--seconds 3600] [--every 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from tests.e2e.test_crash import start_daemon  # noqa: E402
from tests.integration.peers import free_port  # noqa: E402

CONFIG = """\
[webhooks]
allow_cidrs = ["127.0.0.1/32"]
[[meetings]]
id = "talks"
title = "Talks"
timezone = "Europe/Moscow"
starts_at = "2030-03-02T19:00:00+03:00"
status = "postponed"
[[subscribers]]
id = "desk"
email = "desk@example.org"
reminders = ["1h"]
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--every", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "notifier.toml").write_text(CONFIG, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")} | {
            "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'notifier.db'}",
            "NOTIFIER_CONFIG": str(folder / "notifier.toml"),
            "NOTIFIER_LISTEN": f"127.0.0.1:{free_port()}",
            "PYTHONPATH": str(ROOT),
        }
        daemon = await start_daemon(env, folder)
        try:
            await asyncio.sleep(min(10.0, args.seconds / 10))  # past start-up's own work
            first = rss_kib(daemon.pid)
            started = time.monotonic()
            print(f"RSS after start-up: {first / 1024:.1f} MiB", flush=True)
            while (elapsed := time.monotonic() - started) < args.seconds:
                await asyncio.sleep(min(args.every, args.seconds - elapsed))
                now = rss_kib(daemon.pid)
                print(f"{time.monotonic() - started:7.0f} s: {now / 1024:.1f} MiB", flush=True)
            last = rss_kib(daemon.pid)
        finally:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
    growth = (last - first) / 1024
    hours = args.seconds / 3600
    print(f"idle {args.seconds:.0f} s: {first / 1024:.1f} -> {last / 1024:.1f} MiB ({growth:+.1f})")
    results.add(
        "idle",
        f"idle daemon RSS growth over {hours:g} h",
        round(growth, 1),
        "MiB",
        baseline=round(first / 1024, 1),
        baseline_name="RSS after start-up",
        target="< 2 MiB",
        met=growth < 2,
    )


if __name__ == "__main__":
    asyncio.run(main())
