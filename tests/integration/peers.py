"""Real protocol peers for the delivery tests: an SMTP server and a webhook receiver.

Both listen on 127.0.0.1 only. They record what they receive and answer according to a
script the test sets, so a test can say "451 once, then accept" or "410 from now on".
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Mailbox:
    """What the SMTP server received, and the replies it will give."""

    messages: list[tuple[str, EmailMessage]] = field(default_factory=list)
    #: Every accepted DATA exactly as it came off the wire, with its envelope recipients.
    raw: list[tuple[list[str], bytes]] = field(default_factory=list)
    #: The envelope sender (MAIL FROM) of each accepted DATA, in the order of `raw`.
    senders: list[str] = field(default_factory=list)
    #: Per recipient address, replies to give RCPT in turn (then "250 OK").
    rcpt_script: dict[str, list[str]] = field(default_factory=dict)
    #: Replies to give DATA in turn, whoever the recipient (then "250 OK").
    data_script: list[str] = field(default_factory=list)
    #: Replies to give MAIL FROM in turn (then "250 OK").
    mail_script: list[str] = field(default_factory=list)
    #: RCPT TO addresses the server was asked to take, accepted or not.
    rcpts_asked: list[str] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, address: str) -> list[EmailMessage]:
        """Messages accepted for `address`."""
        with self.lock:
            return [m for rcpt, m in self.messages if rcpt == address]


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.box.lock:
            self.box.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.box.lock:
            reply = self.box.mail_script.pop(0) if self.box.mail_script else "250 OK"
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return reply

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.box.lock:
            self.box.rcpts_asked.append(address)
            script = self.box.rcpt_script.get(address)
            reply = script.pop(0) if script else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.box.lock:
            reply = self.box.data_script.pop(0) if self.box.data_script else "250 OK"
            if reply.startswith("250"):
                parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
                self.box.raw.append((list(envelope.rcpt_tos), envelope.original_content or b""))
                self.box.senders.append(envelope.mail_from or "")
                for rcpt in envelope.rcpt_tos:
                    self.box.messages.append((rcpt, parsed))  # type: ignore[arg-type]
        return reply


class SmtpServer:
    """An aiosmtpd server on a free loopback port, run in its own thread."""

    def __init__(self, *, port: int = 0, box: Mailbox | None = None, **options: Any) -> None:
        # The same port and mailbox again: a server "restarted" after an outage.
        self.box = box or Mailbox()
        self.port = port or free_port()
        self.controller = Controller(
            _Handler(self.box), hostname="127.0.0.1", port=self.port, **options
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller._thread is not None:  # running (stopping twice is harmless)
            self.controller.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Hit:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: Any
    #: The status the receiver answered (0 while it has not answered yet).
    status: int = 0


@dataclass
class Receiver:
    """A webhook receiver whose answers a test scripts; verifies with the reference library."""

    secrets: list[str]
    hits: list[Hit] = field(default_factory=list)
    #: Per path, answers in turn: a status, (status, headers), or "hang" (never answers).
    script: dict[str, list[Any]] = field(default_factory=dict)
    #: Answer given once a path's script is used up.
    default: Callable[[str], Any] = lambda path: 204
    port: int = 0
    delay: float = 0.0
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def verified(self, path: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.verified is not None and (path is None or h.path == path)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = None
        for secret in self.secrets:
            try:
                verified = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        hit = Hit(request.path, headers, body, verified)
        self.hits.append(hit)
        if self.delay:
            await asyncio.sleep(self.delay)
        script = self.script.get(request.path)
        answer = script.pop(0) if script else self.default(request.path)
        if answer == "hang":
            await asyncio.sleep(3600)
        status, extra = (answer, {}) if isinstance(answer, int) else answer
        hit.status = status
        return web.Response(status=status, headers=extra, text="" if status < 300 else "nope")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
