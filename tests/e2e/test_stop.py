"""SIGTERM drains a fan-out (in-flight work finished or handed back, never left to the
lease), and a second daemon on the same SQLite file refuses to start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_crash import write_config
from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, SmtpServer


def environment(tmp_path: Path, database_url: str, drain: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return env | {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "NOTIFIER_DELIVERY__DRAIN_TIMEOUT": drain,
        # A lease far longer than the test: only a hand-back can make them due again.
        "NOTIFIER_DELIVERY__LEASE": "10m",
        "PYTHONPATH": str(ROOT),
    }


async def statuses(env: dict[str, str], cwd: Path) -> dict[str, int]:
    code, out = await cli(env, cwd, "deliveries", "--json", "--limit", "10000")
    assert code == 0, out
    counts: dict[str, int] = {}
    for delivery in json.loads(out):
        counts[delivery["status"]] = counts.get(delivery["status"], 0) + 1
    return counts


async def test_sigterm_mid_fanout_leaves_nothing_claimed(tmp_path: Path, database_url: str) -> None:
    # Slow enough that the drain (1 s) cannot finish what is in flight.
    receiver = await Receiver(secrets=[SECRET], delay=1.5).start()
    smtp = SmtpServer().start()
    write_config(tmp_path / "notifier.toml", receiver, smtp.port)
    env = environment(tmp_path, database_url, drain="1s")
    daemon = await start_daemon(env, tmp_path)
    try:
        code, out = await cli(env, tmp_path, "event", "talks", "cleared", "--reason", "clear")
        assert code == 0, out
        await wait_for(lambda: len(receiver.hits) >= 20, 60)
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        left = await statuses(env, tmp_path)
        assert left.get("sending", 0) == 0, left
        assert left.get("pending", 0) + left.get("retrying", 0) > 0, left

        # The next start sends what was handed back at once (not after the 10 min lease).
        receiver.delay = 0.0
        daemon = await start_daemon(env, tmp_path)
        expected = len({f"/h/{n}" for n in range(300)})
        await wait_for(lambda: len({h.path for h in receiver.hits}) >= expected, 60)
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
        smtp.stop()
        await receiver.stop()


async def test_a_second_daemon_on_one_sqlite_file_refuses_to_start(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL takes any number of replicas")
    receiver = await Receiver(secrets=[SECRET]).start()
    write_config(tmp_path / "notifier.toml", receiver, 1)
    env = environment(tmp_path, database_url, drain="5s")
    first = await start_daemon(env, tmp_path)
    try:
        code, out = await cli(env, tmp_path, "run")
        assert code == 1, out
        assert f"another notifier daemon (pid {first.pid}) is running" in out
        assert first.returncode is None
        code, out = await cli(env, tmp_path, "event", "talks", "cleared")  # the CLI still works
        assert code == 0, out
    finally:
        first.send_signal(signal.SIGTERM)
        await first.wait()
        await receiver.stop()
