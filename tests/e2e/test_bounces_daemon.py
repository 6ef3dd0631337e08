"""The daemon with ``[bounces]`` set: its mail goes out with a signed return path, its own
SMTP listener takes the DSN that comes back, and `notifier deliveries show` tells it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiosmtplib

from tests.e2e.conftest import ROOT
from tests.e2e.test_crash import cli, start_daemon, wait_for
from tests.integration.peers import SmtpServer, free_port
from tests.integration.test_bounces_later import VERP

FIXTURES = ROOT / "tests" / "fixtures" / "dsn"


async def test_the_daemon_listens_for_bounces_and_records_a_hard_one(
    tmp_path: Path, database_url: str
) -> None:
    smtp = SmtpServer().start()
    bounce_port = free_port()
    (tmp_path / "notifier.toml").write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{free_port()}"',
                "[smtp]",
                f"port = {smtp.port}",
                'sender = "Notifier <notifier@example.org>"',
                'timeout = "2s"',
                "[bounces]",
                'address = "bounces@example.org"',
                f'listen = "127.0.0.1:{bounce_port}"',
                "[[meetings]]",
                'id = "talks"',
                'title = "Talks"',
                'timezone = "Europe/Moscow"',
                'starts_at = "2030-03-02T19:00:00+03:00"',
                'status = "postponed"',
                "[[subscribers]]",
                'id = "gone"',
                'email = "gone@example.org"',
            ]
        )
        + "\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    log: list[str] = []
    daemon = await start_daemon(env, tmp_path, log=log)
    try:
        assert any(f"bounce listener on 127.0.0.1:{bounce_port}" in line for line in log)
        code, out = await cli(env, tmp_path, "event", "talks", "cleared", "--reason", "clear")
        assert code == 0, out
        await wait_for(lambda: smtp.box.to("gone@example.org"), 20, "the email sent")
        [sender] = smtp.box.senders
        assert VERP.fullmatch(sender), sender
        [message] = smtp.box.to("gone@example.org")
        raw = (FIXTURES / "postfix-hard.eml").read_text()
        raw = raw.replace("{{RETURN_PATH}}", sender).replace("{{RECIPIENT}}", "gone@example.org")
        raw = raw.replace("{{MESSAGE_ID}}", str(message["Message-ID"]))
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bounce_port, timeout=10) as mta:
            await mta.sendmail("", [sender], raw.replace("\n", "\r\n").encode())
            refused = await mta.sendmail("", ["bounces@example.org", sender], b"Subject: x\r\n\r\n")
        assert refused[0]["bounces@example.org"].code == 550

        code, out = await cli(env, tmp_path, "deliveries", "list", "--json")
        assert code == 0, out
        [delivery] = [d for d in json.loads(out) if d["subscriber"] == "gone"]
        code, shown = await cli(env, tmp_path, "deliveries", "show", delivery["id"])
        assert code == 0, shown
        assert "bounced later: 5.1.1" in shown
        assert "DSN from mx.example.org" in shown
        code, listed = await cli(env, tmp_path, "suppressions", "--json")
        assert code == 0, listed
        assert [s["address"] for s in json.loads(listed)] == ["gone@example.org"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        smtp.stop()
