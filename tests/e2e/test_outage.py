"""The database going away is an outage, not a crash: the real PostgreSQL server is restarted
(with the cluster's own tools) under a steady stream of status pushes. /readyz turns 503
within seconds, the API answers 503 with Retry-After and never 500, and every accepted
change is delivered afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import ROOT
from tests.helpers.daemon import cli, spawn_daemon, start_daemon, wait_for
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, free_port

# Restarts the PostgreSQL server every other test uses: run alone (make test).
pytestmark = pytest.mark.serial

READERS = 10
TOKEN = "outage-token"


def cluster(action: str) -> list[str]:
    """The command that stops or starts the local PostgreSQL cluster, or skip."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.skip("no pg_ctlcluster here to restart PostgreSQL with")
    version = sorted(os.listdir("/etc/postgresql"))[0]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def write_config(
    path: Path, receiver: Receiver, port: int, *, extra: int = 0, briefing: datetime | None = None
) -> None:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        'config_watch = "1s"',
        f'api_tokens = ["{TOKEN}"]',
        "[smtp]",
        'timeout = "2s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "2s"',
        "[delivery]",
        'lease = "5s"',
        'poll = "1s"',
        'retry_schedule = ["1s", "2s", "2s", "2s", "2s"]',
        "[api]",
        "rate_per_minute = 100000",
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        'starts_at = "2030-03-02T19:00:00+03:00"',
        'status = "postponed"',
    ]
    if briefing is not None:  # a meeting whose reminder falls due during the outage
        lines += [
            "[[meetings]]",
            'id = "briefing"',
            'title = "Briefing"',
            'timezone = "UTC"',
            f'starts_at = "{briefing.isoformat()}"',
            'status = "confirmed"',
            "[[subscribers]]",
            'id = "reminded"',
            f'webhook = {{ url = "{receiver.url("/remind")}", secrets = ["{SECRET}"] }}',
            'meetings = ["briefing"]',
            'events = ["meeting.reminder"]',
            'reminders = ["60s"]',
        ]
    for n in range(READERS, READERS + extra):  # added while the database is down
        lines += ["[[subscribers]]", f'id = "late-{n}"', f'email = "late{n}@example.org"']
    for n in range(READERS):
        lines += [
            "[[subscribers]]",
            f'id = "r{n}"',
            f'webhook = {{ url = "{receiver.url(f"/r/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    path.write_text("\n".join(lines) + "\n")


async def test_a_postgresql_restart_under_load_is_an_outage_not_a_crash(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("restarts the PostgreSQL server")
    stop_db, start_db = cluster("stop"), cluster("start")
    receiver = await Receiver(secrets=[SECRET]).start()
    port = free_port()
    # The briefing's 60 s reminder falls due about 7 s from now: while the database is away.
    briefing = (datetime.now(UTC) + timedelta(seconds=67)).replace(microsecond=0)
    write_config(tmp_path / "notifier.toml", receiver, port, briefing=briefing)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    said: list[str] = []
    daemon = await start_daemon(env, tmp_path, log=said)
    api = f"http://127.0.0.1:{port}"
    answers: list[tuple[str, int, str]] = []  # (event id, status, Retry-After)
    ready: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def push(client: httpx.AsyncClient) -> None:
        statuses = ["cleared", "postponed"]
        number = 0
        while not stop.is_set():
            event = f"push-{number}"
            body = {"status": statuses[number % 2], "reason": "r", "event_id": event}
            try:
                response = await client.post(
                    f"{api}/v1/meetings/talks/status",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                answers.append(
                    (event, response.status_code, response.headers.get("Retry-After", ""))
                )
                if response.status_code == 202:
                    number += 1
            except httpx.HTTPError:
                answers.append((event, 0, ""))
            await asyncio.sleep(0.1)

    async def probe(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                code = (await client.get(f"{api}/readyz")).status_code
            except httpx.HTTPError:
                code = 0
            ready.append((time.monotonic(), code))
            await asyncio.sleep(0.2)

    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            tasks = [asyncio.create_task(push(client)), asyncio.create_task(probe(client))]
            await asyncio.sleep(2)
            restarted_at = time.monotonic()
            await asyncio.to_thread(run, stop_db)
            # An edit made while the database is away is applied once it is back.
            write_config(tmp_path / "notifier.toml", receiver, port, extra=1, briefing=briefing)
            await asyncio.sleep(
                max(3.0, (briefing - timedelta(seconds=58) - datetime.now(UTC)).total_seconds())
            )
            await asyncio.to_thread(run, start_db)
            back_at = time.monotonic()
            await wait_for(lambda: ready and ready[-1][1] == 200 and ready[-1][0] > back_at, 60)
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*tasks)

        codes = Counter(code for _, code, _ in answers)
        assert not [c for c in codes if c >= 500 and c != 503], codes
        assert all(after for _, code, after in answers if code == 503)
        turned = [t for t, code in ready if t >= restarted_at and code == 503]
        assert turned, f"/readyz never said 503 during the restart: {ready}"
        assert turned[0] - restarted_at < 10
        ready_again = next(t for t, code in ready if t > back_at and code == 200)
        accepted = [event for event, code, _ in answers if code == 202]
        assert len(accepted) >= 20

        # Asked of the daemon's API: a CLI command would reconcile the file itself.
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            for _ in range(50):
                late = await client.get(
                    f"{api}/v1/subscribers/late-{READERS}",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                if late.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        assert late.status_code == 200, "the edit made during the outage was not applied"

        # Every accepted change was kept, and is delivered to every reader.
        code, out = await cli(env, tmp_path, "meetings", "show", "talks", "--json")
        assert code == 0, out
        kept = {h.get("event_id") for h in json.loads(out)["history"]}
        assert set(accepted) <= kept
        await wait_for(
            lambda: (
                len({h.headers["webhook-id"] for h in receiver.hits}) >= len(accepted) * READERS
            ),
            90,
            "every accepted change delivered",
        )
        # The reminder that fell due while the database was away fired once, late.
        await wait_for(lambda: any(h.path == "/remind" for h in receiver.hits), 30, "reminder")
        await asyncio.sleep(2)
        assert len([h for h in receiver.hits if h.path == "/remind"]) == 1
        # One line when trouble starts and one when it ends, per loop; no traceback.
        text = "".join(said)
        assert "Traceback" not in text, text[-3000:]
        assert text.count("cannot work (") <= 1
        assert text.count("reminder-sync failing") <= 1
        assert text.count("config reload (file changed) waits for the database") == 1
        print(
            f"outage: answers {dict(codes)}; /readyz 503 after "
            f"{turned[0] - restarted_at:.1f}s, 200 again {ready_again - back_at:.1f}s after "
            f"the start; accepted {len(accepted)}, lost 0"
        )
    finally:
        stop.set()
        daemon.send_signal(signal.SIGTERM)
        await daemon.wait()
        await receiver.stop()


async def _forward(target: tuple[str, int]) -> Callable[..., Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )

    return handle


async def test_a_daemon_started_while_the_database_is_down_waits_for_it(
    tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a database server that can be away")
    real = make_url(database_url)
    port = free_port()  # nothing listens here yet: the database is "down"
    away = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    receiver = await Receiver(secrets=[SECRET]).start()
    write_config(tmp_path / "notifier.toml", receiver, free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": away,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    daemon = await spawn_daemon(env, tmp_path)
    assert daemon.stderr is not None
    server = None
    seen: list[str] = []

    async def until(text: str, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while True:
                line = (await daemon.stderr.readline()).decode()  # type: ignore[union-attr]
                assert line, "the daemon exited:\n" + "".join(seen)
                seen.append(line)
                if text in line:
                    return

    try:
        await until("waiting for the database", 30)
        await asyncio.sleep(3)
        assert daemon.returncode is None, "the daemon gave up instead of waiting"
        handler = await _forward((real.host or "127.0.0.1", real.port or 5432))
        server = await asyncio.start_server(handler, "127.0.0.1", port)
        await until("the database answers after", 60)
        await until("started: database", 60)
        waits = [line for line in seen if "waiting for the database" in line]
        assert len(waits) == 1, "one line when waiting starts, not one per try"
        assert "Traceback" not in "".join(seen)
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        if server is not None:
            server.close()
        await receiver.stop()
