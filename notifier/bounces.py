"""Where DSNs come in: an SMTP listener of our own (aiosmtpd), or an IMAP mailbox polled.

A daemon component (``[bounces] listen``): the bounce domain's MX, or a forward, points
at it. It takes mail only for ``local+TOKEN@domain`` of ``[bounces] address`` (550 for
any other recipient) and at most `notifier.dsn.MAX_BYTES` of it (552 past that); each
message is read (`notifier.dsn.read_report`) and handed to `service.record_bounce`, which
decides. A database that cannot be written answers 451, so the sending MTA tries again.

`BounceMailbox` (``[bounces] imap``) reads a mailbox the bounce address is delivered to,
with aioimaplib, every ``bounces.every``: each message goes the same way, then is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Callable
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

import aioimaplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifier import service
from notifier.domain.errors import NotifierError
from notifier.domain.mailbox import Mailbox
from notifier.dsn import MAX_BYTES, read_report
from notifier.store.port import StorePort
from notifier.supervisor import Tasks
from notifier.tokens import token_of_return_path
from notifier.trouble import Trouble

log = logging.getLogger(__name__)

#: Recipients taken in one transaction (a DSN has one: its return path).
MAX_RECIPIENTS = 10


class _Handler:
    def __init__(self, listener: BounceListener) -> None:
        self.listener = listener

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if token_of_return_path(self.listener.bounce_address, address) is None:
            log.info(
                "bounce listener refused recipient %s: not a return path of %s",
                address[:320],
                self.listener.bounce_address,
                extra={"action": "bounce_refused"},
            )
            return "550 5.1.1 not a bounce address here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        report = read_report(raw)
        try:
            for recipient in envelope.rcpt_tos:
                await service.record_bounce(
                    self.listener.store,
                    report,
                    token=token_of_return_path(self.listener.bounce_address, recipient),
                    key=self.listener.key,
                    now=self.listener.clock(),
                )
        except Exception as exc:  # the database away: the sender keeps the DSN and retries
            log.warning(
                "bounce listener could not record a DSN (%s); answered 451",
                type(exc).__name__,
                extra={"action": "bounce_trouble"},
            )
            return "451 4.3.0 cannot record it now, try again later"
        return "250 2.0.0 OK"


class BounceListener:
    """A daemon component: the SMTP server for DSNs on `listen` (``host:port``)."""

    name = "bounce listener"

    def __init__(
        self,
        store: StorePort,
        *,
        listen: str,
        bounce_address: str,
        key: str,
        clock: Callable[[], datetime],
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.listen = listen
        self.bounce_address = bounce_address
        self.key = key
        self.clock = clock
        self.hostname = hostname or socket.getfqdn()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen, when `listen` asked for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            data_size_limit=MAX_BYTES,
            hostname=self.hostname,
            ident="notifier bounce listener",
            timeout=60,
            enable_SMTPUTF8=False,
        )

    async def start(self, tasks: Tasks | None = None) -> None:
        """Listen; the SMTP sessions run in the event loop, one task each."""
        host, _, port = self.listen.rpartition(":")
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol, host=host.strip("[]"), port=int(port)
            )
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise NotifierError(
                f"cannot listen on {self.listen} for bounces: {reason}; set bounces.listen "
                "in the config file or NOTIFIER_BOUNCES__LISTEN to use another address"
            ) from None
        log.info(
            "bounce listener on %s for %s",
            self.listen,
            self.bounce_address,
            extra={"action": "bounce_listen"},
        )

    async def stop(self) -> None:
        """Stop taking connections and close those open."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


#: Messages read from the mailbox in one poll (the rest wait for the next).
POLL_BATCH = 100
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)", re.IGNORECASE)


def _recipient_token(bounce_address: str, raw: bytes) -> str | None:
    """The return-path token a DSN in a mailbox was sent to: from the headers its MTA
    wrote the envelope recipient into (Delivered-To, X-Original-To), else To."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        for value in headers.get_all(name) or []:
            for _, address in getaddresses([str(value)]):
                token = token_of_return_path(bounce_address, address)
                if token is not None:
                    return token
    return None


class BounceMailbox:
    """A daemon component: reads DSNs from an IMAP mailbox every `every` seconds, hands
    each to `service.record_bounce`, then deletes it (\\Deleted and EXPUNGE). A message
    larger than `notifier.dsn.MAX_BYTES` is deleted unread; a DSN that cannot be recorded
    (the database away) stays for the next poll."""

    name = "bounce mailbox"

    def __init__(
        self,
        store: StorePort,
        *,
        mailbox: Mailbox,
        every: float,
        bounce_address: str,
        key: str,
        clock: Callable[[], datetime],
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.mailbox = mailbox
        self.every = every
        self.bounce_address = bounce_address
        self.key = key
        self.clock = clock
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: The mailbox unreadable: one line when that starts, one when it is readable again.
        self._trouble: Trouble[datetime] = Trouble(log)

    async def start(self, tasks: Tasks) -> None:
        self._stop.clear()
        self._task = tasks.create_task(self._run, name=self.name)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.poll()
                if self._trouble.recovered(now=self.clock()) is not None:  # said, not timed
                    log.warning("bounce mailbox readable again", extra={"action": "imap_ok"})
            except (OSError, TimeoutError, aioimaplib.AioImapException, ImapRefused) as exc:
                self._trouble.failed(
                    "cannot read the bounce mailbox %s: %s: %s",
                    self.mailbox,
                    type(exc).__name__,
                    str(exc)[:200],
                    now=self.clock(),
                    extra={"action": "imap_trouble"},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)

    async def poll(self) -> int:
        """Read what is in the mailbox now (up to `POLL_BATCH` messages); how many were
        handled and deleted."""
        box = self.mailbox
        client: aioimaplib.IMAP4
        if box.secure:
            client = aioimaplib.IMAP4_SSL(
                box.host, box.port, timeout=self.timeout, ssl_context=self.ssl_context
            )
        else:
            client = aioimaplib.IMAP4(box.host, box.port, timeout=self.timeout)
        async with asyncio.timeout(self.timeout * 4):
            await client.wait_hello_from_server()
            try:
                _ok(await client.login(box.user, box.password), "LOGIN")
                _ok(await client.select(box.folder), "SELECT")
                found = _ok(await client.uid_search("ALL"), "SEARCH")
                uids = [u for line in found.lines[:1] for u in bytes(line).split()][:POLL_BATCH]
                handled = [uid.decode() for uid in uids if await self._one(client, uid.decode())]
                if handled:
                    _ok(
                        await client.uid("store", ",".join(handled), "+FLAGS", "(\\Deleted)"),
                        "STORE",
                    )
                    _ok(await client.expunge(), "EXPUNGE")
                return len(handled)
            finally:
                with contextlib.suppress(Exception):  # the session is over either way
                    await client.logout()

    async def _one(self, client: aioimaplib.IMAP4, uid: str) -> bool:
        """Read message `uid` and record it; whether it may be deleted."""
        sized = _ok(await client.uid("fetch", uid, "(RFC822.SIZE)"), "FETCH")
        size = next(
            (int(m.group(1)) for line in sized.lines if (m := _SIZE.search(bytes(line)))), 0
        )
        if size > MAX_BYTES:
            log.warning(
                "DSN ignored: message %s in the bounce mailbox is larger than %d bytes",
                uid,
                MAX_BYTES,
                extra={"action": "bounce_refused"},
            )
            return True
        fetched = _ok(await client.uid("fetch", uid, "(BODY.PEEK[])"), "FETCH")
        raw = next((bytes(line) for line in fetched.lines if isinstance(line, bytearray)), b"")
        try:
            await service.record_bounce(
                self.store,
                read_report(raw),
                token=_recipient_token(self.bounce_address, raw),
                key=self.key,
                now=self.clock(),
            )
        except Exception as exc:  # the database away: leave the message for the next poll
            log.warning(
                "could not record a DSN from the bounce mailbox (%s); it stays there",
                type(exc).__name__,
                extra={"action": "bounce_trouble"},
            )
            return False
        return True


class ImapRefused(Exception):
    """The IMAP server answered NO or BAD."""


def _ok(response: Any, command: str) -> Any:
    if response.result != "OK":
        said = b" ".join(bytes(line) for line in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapRefused(f"{command} answered {response.result}: {said[:200]}")
    return response
