"""Fault injection: three replicas on PostgreSQL, killed and restarted in the middle of work.

One scenario, timed so the faults land while work is in flight:

* 1,000 webhook readers x 5 status changes = 5,000 webhooks, 50 mail readers x 5 = 250
  mails, pushed over the HTTP API of all three replicas;
* the receiver answers 503 to everything for the first seconds (retried per schedule);
* the SMTP server is down from before the first change until after the kills;
* 20 reminders come due right after the scheduler leader is killed with SIGKILL;
* once a fifth of the webhooks are in, the leader is killed; at two fifths, another
  replica is killed too (the last one must take the lead); both are restarted, as an orchestrator
  would.

Then: every delivery is sent and none failed; every webhook verifies; a webhook-id always
carries the same body to the same reader; repeats of an accepted webhook are bounded by
what the two killed replicas could have had in flight; each reminder went out once; every
mail arrived once per reader and change; the survivors stop cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import _truncate
from tests.e2e.conftest import ROOT
from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, SmtpServer, free_port

# Three daemons and a killed leader: CPU-bound, and timed against a lease: alone.
pytestmark = [pytest.mark.postgres, pytest.mark.serial]

HOOKS = 1000
MAILS = 50
CHANGES = 5
REMINDED = 20
BATCH = 50
PARALLEL = 2
TOKEN = "replica-test-token"
#: Immediately, then these; a delivery still failing after all of them is dead.
SCHEDULE = ["1s", "2s", "3s", "5s", "8s", "13s", "21s", "34s"]


@pytest.fixture
def postgres(postgres_url: str) -> str:
    asyncio.run(_truncate(postgres_url))
    return postgres_url


def write_config(path: Path, receiver: Receiver, smtp_port: int, feed: str) -> None:
    lines = [
        f'api_tokens = ["{TOKEN}"]',
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'timeout = "2s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "5s"',
        "[feeds]",
        'allow_cidrs = ["127.0.0.1/32"]',
        "[delivery]",
        f"batch = {BATCH}",
        f"parallel = {PARALLEL}",
        "concurrency = 16",
        'lease = "6s"',
        'poll = "1s"',
        f"retry_schedule = {json.dumps(SCHEDULE)}",
        "jitter = 0.1",
        "[leader]",
        'lease = "4s"',
        'renew = "1s"',
        "[[sources]]",
        'kind = "json"',
        f'url = "{feed}"',
        'every = "1s"',
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        'starts_at = "2030-03-02T19:00:00+03:00"',
        'status = "postponed"',
    ]
    for n in range(HOOKS):
        lines += [
            "[[subscribers]]",
            f'id = "hook-{n}"',
            'meetings = ["talks"]',
            f'webhook = {{ url = "{receiver.url(f"/h/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    for n in range(MAILS):
        lines += [
            "[[subscribers]]",
            f'id = "mail-{n}"',
            'meetings = ["talks"]',
            f'email = "m{n}@example.org"',
        ]
    for n in range(REMINDED):
        lines += [
            "[[subscribers]]",
            f'id = "remind-{n}"',
            'meetings = ["evening"]',
            'events = ["meeting.reminder"]',
            'reminders = ["30s"]',
            f'webhook = {{ url = "{receiver.url(f"/r/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Replica:
    """One `notifier run` process with its own HTTP port."""

    name: str
    port: int
    env: dict[str, str]
    cwd: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await start_daemon(
            self.env | {"NOTIFIER_LISTEN": f"127.0.0.1:{self.port}"}, self.cwd
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)

    async def leading(self, client: httpx.AsyncClient) -> bool:
        answer = await client.get(f"{self.api}/healthz")
        return bool(answer.json()["leader"]["leading"])


async def leader_of(replicas: list[Replica], client: httpx.AsyncClient) -> Replica:
    found: list[Replica] = []

    async def one_leads() -> bool:
        found.clear()
        for replica in replicas:
            if replica.alive and await replica.leading(client):
                found.append(replica)
        return len(found) == 1

    await wait_for(one_leads, 20, "exactly one replica leads")
    return found[0]


@dataclass
class Feed:
    """A JSON feed with no meetings in it that notes when it is read."""

    reads: list[float] = field(default_factory=list)
    url: str = ""

    async def _serve(self, request: web.Request) -> web.Response:
        self.reads.append(time.monotonic())
        return web.json_response({"meetings": []})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Feed]:
        app = web.Application()
        app.router.add_get("/feed.json", self._serve)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/feed.json"
        try:
            yield self
        finally:
            await runner.cleanup()


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Receiver, SmtpServer]]:
    receiver = await Receiver(secrets=[SECRET], delay=0.05).start()
    smtp = SmtpServer().start()
    try:
        yield receiver, smtp
    finally:
        smtp.stop()
        await receiver.stop()


async def test_three_replicas_lose_nothing_through_kills_and_outages(
    tmp_path: Path, postgres: str, peers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = peers
    feed = Feed()
    async with feed.running():
        await scenario(tmp_path, postgres, receiver, smtp, feed)


async def scenario(
    tmp_path: Path, postgres: str, receiver: Receiver, smtp: SmtpServer, feed: Feed
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": postgres,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    write_config(tmp_path / "notifier.toml", receiver, smtp.port, feed.url)
    code, out = await cli(env, tmp_path, "db", "upgrade")
    assert code == 0, out
    replicas = [Replica(name, free_port(), env, tmp_path) for name in "abc"]
    auth = {"authorization": f"Bearer {TOKEN}"}
    smtp_box, smtp_port = smtp.box, smtp.port
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        polling_since = time.monotonic()
        async with httpx.AsyncClient(timeout=10, headers=auth, trust_env=False) as client:
            first_leader = await leader_of(replicas, client)

            # Outages before the work: the receiver answers 503, the mail server is down.
            receiver.default = lambda path: 503
            smtp.stop()
            steps: list[dict[str, Any]] = [
                {"status": "cleared", "reason": "health clearance"},
                {"status": "postponed", "reason": "a second assessment"},
                {"status": "cleared", "reason": "cleared again"},
                {"status": "rescheduled", "starts_at": "2030-03-02T21:00:00+03:00"},
                {"status": "confirmed"},
            ]
            for n, step in enumerate(steps):
                replica = replicas[n % len(replicas)]
                answer = await client.post(
                    f"{replica.api}/v1/meetings/talks/status", json=step | {"event_id": f"e{n}"}
                )
                assert answer.status_code == 202, answer.text
            await asyncio.sleep(1.5)
            receiver.default = lambda path: 204

            def accepted() -> list[Any]:
                return [h for h in receiver.hits if 200 <= h.status < 300]

            await wait_for(lambda: len(accepted()) >= (HOOKS * CHANGES) // 5, 60, "1/5 sent")
            # Reminders due in a moment (thirty seconds before an evening meeting created
            # now), and the leader dies before they are due.
            due = datetime.now(UTC) + timedelta(seconds=1.5)
            answer = await client.post(
                f"{replicas[1].api}/v1/meetings",
                json={
                    "id": "evening",
                    "title": "Evening session",
                    "timezone": "Europe/Moscow",
                    "starts_at": (due + timedelta(seconds=30)).isoformat(),
                },
            )
            assert answer.status_code == 201, answer.text
            await first_leader.kill()
            # Then another replica, whether or not it has taken the lead by now.
            await wait_for(lambda: len(accepted()) >= (HOOKS * CHANGES) * 2 // 5, 60, "2/5 sent")
            second = next(r for r in replicas if r.alive)
            await second.kill()
            killed_at = time.monotonic()
            assert len(accepted()) < HOOKS * CHANGES, "the fan-out ended before the kills"
            await leader_of(replicas, client)
            takeover = time.monotonic() - killed_at
            assert takeover < 15, f"the last replica took {takeover:.1f}s to take the lead"

            # The orchestrator restarts both; the mail server comes back.
            await asyncio.sleep(1)
            smtp = SmtpServer(port=smtp_port, box=smtp_box).start()
            await asyncio.gather(first_leader.start(), second.start())
            await leader_of(replicas, client)

            def hook_ids() -> set[str]:
                return {h.headers["webhook-id"] for h in accepted()}

            await wait_for(
                lambda: (
                    len(hook_ids()) >= HOOKS * CHANGES + REMINDED
                    and len(smtp_box.messages) >= MAILS * CHANGES
                ),
                150,
                "every webhook and mail delivered",
            )
            await asyncio.sleep(1)  # let the last attempts be recorded

            # Every planned delivery is sent; none failed or is waiting.
            sent: list[dict[str, Any]] = []

            async def all_recorded() -> bool:
                nonlocal sent
                code, out = await cli(
                    env, tmp_path, "deliveries", "--status", "sent", "--json", "--limit", "20000"
                )
                assert code == 0, out
                sent = json.loads(out)
                return len(sent) == HOOKS * CHANGES + MAILS * CHANGES + REMINDED

            await wait_for(all_recorded, 30, "every delivery recorded as sent")
            code, out = await cli(env, tmp_path, "deliveries", "--status", "failed", "--json")
            assert (code, json.loads(out)) == (0, [])

            # Webhooks: verified, one id per reader and change, repeats only of in-flight work.
            hits = accepted()
            assert all(h.verified is not None for h in receiver.hits)
            by_id: dict[str, set[tuple[str, bytes]]] = defaultdict(set)
            for hit in hits:
                by_id[hit.headers["webhook-id"]].add((hit.path, hit.body))
            assert all(len(seen) == 1 for seen in by_id.values())
            assert set(by_id) == {d["id"] for d in sent if d["channel"] == "webhook"}
            repeats = sum(n - 1 for n in Counter(h.headers["webhook-id"] for h in hits).values())
            assert repeats <= 2 * BATCH * PARALLEL, repeats
            per_path = Counter(next(iter(seen))[0] for seen in by_id.values())
            assert all(per_path[f"/h/{n}"] == CHANGES for n in range(HOOKS))

            # The 503s were retried per schedule: no second attempt before the first delay.
            refused = [h for h in receiver.hits if h.status == 503]
            assert refused
            code, out = await cli(
                env, tmp_path, "deliveries", "show", refused[0].headers["webhook-id"], "--json"
            )
            attempts = json.loads(out)["attempts_log"]
            assert [a["outcome"] for a in attempts][-1] == "sent"
            assert attempts[0]["code"] == 503
            gap = datetime.fromisoformat(attempts[1]["at"]) - datetime.fromisoformat(
                attempts[0]["at"]
            )
            assert gap >= timedelta(seconds=0.9), attempts

            # Each reminder went out once, though its instant fell in the failover.
            reminders = [h for h in hits if h.path.startswith("/r/")]
            assert sorted(h.path for h in reminders) == sorted(f"/r/{n}" for n in range(REMINDED))
            assert all(json.loads(h.body)["type"] == "meeting.reminder" for h in reminders)

            # Mail: every reader got every change once, under the delivery's own Message-ID.
            mail_ids = Counter(m["Message-ID"] for _, m in smtp_box.messages)
            assert len(mail_ids) == MAILS * CHANGES
            assert {d["id"] for d in sent if d["channel"] == "email"} == {
                mid.strip("<>").split("@")[0] for mid in mail_ids
            }

            # The feed was polled by one replica at a time (every second), not by all three.
            window = time.monotonic() - polling_since
            polls = len([t for t in feed.reads if t >= polling_since])
            assert window * 0.5 - 3 <= polls <= window * 1.3 + 6, (polls, window)

            # Survivors and restarted replicas stop cleanly.
            codes = await asyncio.gather(*(r.stop() for r in replicas if r.alive))
            assert codes == [0] * len(codes)
    finally:
        for replica in replicas:
            if replica.alive:
                await replica.kill()
        smtp.stop()
