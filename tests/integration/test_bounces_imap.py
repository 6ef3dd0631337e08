"""DSNs read from a real IMAP mailbox (Dovecot, started for the test on a free loopback
port): a hard bounce is recorded as the listener records it, a forged one changes nothing,
and every message read is deleted. Skipped where Dovecot is not installed."""

from __future__ import annotations

import asyncio
import getpass
import imaplib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from notifier.bounces import BounceMailbox, ImapRefused
from notifier.delivery import OutboxWorker
from notifier.domain.mailbox import read_mailbox_url
from notifier.domain.outbox import DeliveryStatus
from notifier.store import Store
from tests.integration.conftest import Clock
from tests.integration.peers import SmtpServer, free_port
from tests.integration.test_bounces_later import BOUNCES, KEY, dsn, send_mail

MakeWorker = Callable[..., Awaitable[OutboxWorker]]
DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)
pytestmark = pytest.mark.skipif(DOVECOT is None, reason="Dovecot is not installed")


@dataclass
class Imap:
    """A Dovecot serving one mailbox over plain IMAP on loopback."""

    port: int
    user: str = "bounces"
    password: str = "imap-secret"

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        client.select("INBOX")
        return client

    def deliver(self, message: bytes) -> None:
        """What the MTA does: the DSN lands in the mailbox."""
        client = self.client()
        try:
            assert client.append("INBOX", None, None, message)[0] == "OK"
        finally:
            client.logout()

    def count(self) -> int:
        client = self.client()
        try:
            return len(client.search(None, "ALL")[1][0].split())
        finally:
            client.logout()


@pytest.fixture(scope="module")
def imap() -> Iterator[Imap]:
    assert DOVECOT is not None
    # Not under pytest's tmp_path (mode 0700): Dovecot's own users must read the passwd file.
    root = Path(tempfile.mkdtemp(prefix="notifier-dovecot-"))
    root.chmod(0o755)
    server = Imap(port=free_port())
    (root / "run").mkdir()
    (root / "home").mkdir(mode=0o777)
    os.chmod(root / "home", 0o777)
    (root / "passwd").write_text(f"{server.user}:{{PLAIN}}{server.password}\n")
    # As root, Dovecot drops to its own users; as anyone else, it runs as that user.
    internal, login = ("dovecot", "dovenull") if os.geteuid() == 0 else (getpass.getuser(),) * 2
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={internal} gid={internal} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {server.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                server.count()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.skip(
                        "Dovecot did not start: " + (root / "dovecot.log").read_text()[-500:]
                    )
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def poller(store: Store, clock: Clock, imap: Imap) -> BounceMailbox:
    return BounceMailbox(
        store,
        mailbox=read_mailbox_url(imap.url),
        every=60,
        bounce_address=BOUNCES,
        key=KEY,
        clock=clock,
        timeout=10,
    )


async def test_dsns_in_an_imap_mailbox_are_recorded_and_deleted(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    imap: Imap,
) -> None:
    sent = await send_mail(
        store,
        clock,
        now,
        smtp_server,
        make_worker,
        "gone@example.org",
        "slow@example.org",
    )
    gone, slow = sent["gone@example.org"], sent["slow@example.org"]
    # The MTA writes the envelope recipient into Delivered-To; To says the same here.
    await asyncio.to_thread(
        imap.deliver,
        b"Delivered-To: " + gone.sender.encode() + b"\r\n" + dsn("exim-hard.eml", gone),
    )
    await asyncio.to_thread(imap.deliver, dsn("postfix-delayed.eml", slow))
    forged = dsn("postfix-hard.eml", slow, recipient="gone@example.org")  # slow's token, gone named
    await asyncio.to_thread(imap.deliver, forged)
    await asyncio.to_thread(imap.deliver, b"Subject: out of office\r\n\r\naway\r\n")
    assert await asyncio.to_thread(imap.count) == 4

    assert await poller(store, clock, imap).poll() == 4
    assert await asyncio.to_thread(imap.count) == 0, "every message read is deleted"
    async with store.read() as tx:
        assert await tx.suppressed(["gone@example.org", "slow@example.org"]) == {"gone@example.org"}
        bounced = await tx.delivery(gone.delivery.id)
        delayed = await tx.delivery(slow.delivery.id)
        assert await tx.soft_bounces(slow.delivery.id) == 1
    assert bounced is not None
    assert bounced.status is DeliveryStatus.DEAD
    assert (bounced.last_error or "").startswith("bounced later: 5.1.1 ")
    assert "DSN from smtp.example.net" in (bounced.last_error or "")
    assert delayed is not None
    assert delayed.status is DeliveryStatus.SENT

    assert await poller(store, clock, imap).poll() == 0, "an empty mailbox: nothing to do"


async def test_a_refused_login_is_said_in_one_line_naming_the_command(
    store: Store, clock: Clock, imap: Imap
) -> None:
    wrong = Imap(port=imap.port, user=imap.user, password="not-it")
    with pytest.raises(ImapRefused, match="LOGIN answered NO"):
        await poller(store, clock, wrong).poll()
    assert "not-it" not in repr(read_mailbox_url(wrong.url))
