"""The daemon with ``[bounces]`` set: its mail goes out with a signed return path, its own
SMTP listener (or the IMAP mailbox it reads) takes the DSN that comes back, and `notifier
deliveries show` tells it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiosmtplib
import pytest

from tests.e2e.conftest import ROOT
from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.integration.peers import SmtpServer, free_port
from tests.integration.test_bounces_imap import DOVECOT, Imap
from tests.integration.test_bounces_imap import imap as imap  # the Dovecot fixture
from tests.integration.test_bounces_later import VERP

FIXTURES = ROOT / "tests" / "fixtures" / "dsn"


def write_config(path: Path, smtp: SmtpServer, *bounces: str) -> None:
    path.write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{free_port()}"',
                "[smtp]",
                f"port = {smtp.port}",
                'sender = "Notifier <notifier@example.org>"',
                'timeout = "2s"',
                "[bounces]",
                'address = "bounces@example.org"',
                *bounces,
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


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return env | {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }


def returned(sender: str, message_id: str) -> bytes:
    """The Postfix fixture as the DSN of the one email the daemon sent."""
    raw = (FIXTURES / "postfix-hard.eml").read_text()
    raw = raw.replace("{{RETURN_PATH}}", sender).replace("{{RECIPIENT}}", "gone@example.org")
    return raw.replace("{{MESSAGE_ID}}", message_id).replace("\n", "\r\n").encode()


async def shown(env: dict[str, str], cwd: Path) -> str:
    code, out = await cli(env, cwd, "deliveries", "list", "--json")
    assert code == 0, out
    [delivery] = [d for d in json.loads(out) if d["subscriber"] == "gone"]
    code, out = await cli(env, cwd, "deliveries", "show", delivery["id"])
    assert code == 0, out
    return out


async def test_the_daemon_listens_for_bounces_and_records_a_hard_one(
    tmp_path: Path, database_url: str
) -> None:
    smtp = SmtpServer().start()
    bounce_port = free_port()
    write_config(tmp_path / "notifier.toml", smtp, f'listen = "127.0.0.1:{bounce_port}"')
    env = environment(tmp_path, database_url)
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
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=bounce_port, timeout=10) as mta:
            await mta.sendmail("", [sender], returned(sender, str(message["Message-ID"])))
            refused = await mta.sendmail("", ["bounces@example.org", sender], b"Subject: x\r\n\r\n")
        assert refused[0]["bounces@example.org"].code == 550

        said = await shown(env, tmp_path)
        assert "bounced later: 5.1.1" in said
        assert "DSN from mx.example.org" in said
        code, listed = await cli(env, tmp_path, "suppressions", "--json")
        assert code == 0, listed
        assert [s["address"] for s in json.loads(listed)] == ["gone@example.org"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        smtp.stop()


@pytest.mark.skipif(DOVECOT is None, reason="Dovecot is not installed")
async def test_the_daemon_reads_bounces_from_an_imap_mailbox(
    tmp_path: Path, database_url: str, imap: Imap
) -> None:
    smtp = SmtpServer().start()
    write_config(tmp_path / "notifier.toml", smtp, f'imap = "{imap.url}"', 'every = "1s"')
    env = environment(tmp_path, database_url)
    daemon = await start_daemon(env, tmp_path)
    try:
        code, out = await cli(env, tmp_path, "event", "talks", "cleared", "--reason", "clear")
        assert code == 0, out
        await wait_for(lambda: smtp.box.to("gone@example.org"), 20, "the email sent")
        [sender] = smtp.box.senders
        [message] = smtp.box.to("gone@example.org")
        dsn = returned(sender, str(message["Message-ID"]))
        await asyncio.to_thread(imap.deliver, b"Delivered-To: " + sender.encode() + b"\r\n" + dsn)

        async def bounced() -> bool:
            return "bounced later: 5.1.1" in await shown(env, tmp_path)

        await wait_for(bounced, 20, "the DSN read from the mailbox")
        assert await asyncio.to_thread(imap.count) == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0
        smtp.stop()
