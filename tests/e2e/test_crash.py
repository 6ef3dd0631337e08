"""kill -9 in the middle of a fan-out, then restart: nothing is lost, nothing is sent twice
except what was in flight, and repeats carry the same webhook-id / Message-ID; every chat
delivery (Apprise json://) arrives at least once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ROOT
from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, SmtpServer, free_port

HOOKS = 300
MAILS = 60
CHATS = 60
BATCH = 40
PARALLEL = 2


def write_config(path: Path, receiver: Receiver, smtp_port: int) -> None:
    lines = [
        'public_url = "http://127.0.0.1:8080"',
        f'listen = "127.0.0.1:{free_port()}"',  # never a fixed port: suites run side by side
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'timeout = "2s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "2s"',
        "[delivery]",
        f"batch = {BATCH}",
        f"parallel = {PARALLEL}",
        "concurrency = 16",
        'lease = "3s"',
        'poll = "1s"',
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
            f'webhook = {{ url = "{receiver.url(f"/h/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    for n in range(MAILS):
        lines += ["[[subscribers]]", f'id = "mail-{n}"', f'email = "m{n}@example.org"']
    port = receiver.port
    for n in range(CHATS):
        lines += [
            "[[subscribers]]",
            f'id = "chat-{n}"',
            f'notify = ["json://127.0.0.1:{port}/c/{n}"]',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def test_a_killed_daemon_loses_nothing_and_repeats_only_in_flight_work(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await Receiver(secrets=[SECRET], delay=0.06).start()
    smtp = SmtpServer().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    write_config(tmp_path / "notifier.toml", receiver, smtp.port)
    daemon = None
    try:
        daemon = await start_daemon(env, tmp_path)
        code, out = await cli(env, tmp_path, "event", "talks", "cleared", "--reason", "clear")
        assert code == 0, out

        def hooks() -> list[Any]:
            return [h for h in receiver.hits if h.path.startswith("/h/")]

        def chats() -> set[str]:
            return {h.path for h in receiver.hits if h.path.startswith("/c/")}

        # Kill it hard once some, but not all, webhooks have gone out.
        await wait_for(lambda: len(hooks()) >= HOOKS // 4, 60)
        daemon.send_signal(signal.SIGKILL)
        await daemon.wait()
        sent_before = len({h.headers["webhook-id"] for h in hooks()})
        assert sent_before < HOOKS, "the fan-out finished before the kill; slow the receiver"

        daemon = await start_daemon(env, tmp_path)
        await wait_for(
            lambda: (
                len({h.headers["webhook-id"] for h in hooks()}) >= HOOKS
                and len(smtp.box.messages) >= MAILS
                and len(chats()) >= CHATS
            ),
            120,
        )
        sent: list[dict[str, str]] = []
        deadline = time.monotonic() + 60
        while len(sent) < HOOKS + MAILS + CHATS and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # the last batch's attempts are being recorded
            code, out = await cli(
                env, tmp_path, "deliveries", "--status", "sent", "--json", "--limit", "10000"
            )
            assert code == 0, out
            sent = json.loads(out)
        assert len(sent) == HOOKS + MAILS + CHATS
        # Every chat reader got its message (at least once: Apprise has no idempotency key).
        assert chats() == {f"/c/{n}" for n in range(CHATS)}
        assert len([d for d in sent if d["channel"] == "notify"]) == CHATS

        # Every webhook verified, each subscriber got the one delivery id planned for it.
        assert all(h.verified is not None for h in hooks())
        planned = {d["id"] for d in sent if d["channel"] == "webhook"}
        counts = Counter(h.headers["webhook-id"] for h in hooks())
        assert set(counts) == planned
        by_path = {h.path: h.headers["webhook-id"] for h in hooks()}
        assert len(by_path) == HOOKS
        for hit in hooks():
            assert by_path[hit.path] == hit.headers["webhook-id"]
        # Repeats are bounded by what could be in flight when the process died.
        assert sum(c - 1 for c in counts.values()) <= BATCH * PARALLEL

        mail_ids = Counter(m["Message-ID"] for _, m in smtp.box.messages)
        assert len(mail_ids) == MAILS
        assert {d["id"] for d in sent if d["channel"] == "email"} == {
            mid.strip("<>").split("@")[0] for mid in mail_ids
        }
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        smtp.stop()
        await receiver.stop()
