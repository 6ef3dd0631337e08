"""The bounce listener: an SMTP server (aiosmtpd) that takes DSNs for the return paths.

A daemon component (``[bounces] listen``): the bounce domain's MX, or a forward, points
at it. It takes mail only for ``local+TOKEN@domain`` of ``[bounces] address`` (550 for
any other recipient) and at most `notifier.dsn.MAX_BYTES` of it (552 past that); each
message is read (`notifier.dsn.read_report`) and handed to `service.record_bounce`, which
decides. A database that cannot be written answers 451, so the sending MTA tries again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import datetime

from aiosmtpd.smtp import SMTP, Envelope, Session

from notifier import service
from notifier.domain.errors import NotifierError
from notifier.dsn import MAX_BYTES, read_report
from notifier.store.port import StorePort
from notifier.supervisor import Tasks
from notifier.tokens import token_of_return_path

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
