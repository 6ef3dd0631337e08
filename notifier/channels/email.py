"""Email over aiosmtplib through a small pool of reused connections.

`send` takes the message as bytes, already built for its one recipient, signs it when a
DKIM signer is given (every message, the operator's notices included), and raises
`TemporaryDeliveryError` (SMTP 4xx, timeouts, dropped connections) or
`PermanentDeliveryError` (SMTP 5xx) carrying the SMTP code.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Literal

import aiosmtplib

from notifier.domain.errors import (
    ChannelUnavailable,
    DeliveryTimeout,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from notifier.mailsign import DkimSigner


class EmailChannel:
    """A pool of up to `pool_size` SMTP connections, opened on demand and kept open."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Literal["none", "starttls", "tls"] = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        pool_size: int = 8,
        tls_context: ssl.SSLContext | None = None,
        signer: DkimSigner | None = None,
    ) -> None:
        self._signer = signer
        self._options = {
            "hostname": host,
            "port": port,
            "use_tls": security == "tls",
            "start_tls": security == "starttls",
            "username": username,
            "password": password,
            "timeout": timeout,
            "tls_context": tls_context,
        }
        self._timeout = timeout
        self._pause = 0.0
        self._paused_until = 0.0
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(pool_size)
        self._open: set[aiosmtplib.SMTP] = set()

    async def __aenter__(self) -> EmailChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Say QUIT on every open connection, and let the sockets finish closing."""
        while self._open:
            client = self._open.pop()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        # A transport closes its socket on the loop's next turn (a TLS one after its
        # shutdown exchange): give it those turns before the caller's loop may end.
        for _ in range(3):
            await asyncio.sleep(0.01)

    async def _checkout(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                return client
            self._open.discard(client)
        client = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        await client.connect()
        self._open.add(client)
        return client

    def _unavailable(self, reason: str, *, code: int | None = None) -> ChannelUnavailable:
        """Pause the channel (5 s, doubling to 5 min while it keeps failing) and say why.

        Sends already under way when the channel broke fail together: they join the pause
        that the first of them started rather than doubling it once each.
        """
        now = time.monotonic()
        if now >= self._paused_until:
            self._pause = min(max(self._pause * 2, PAUSE_FIRST), PAUSE_LONGEST)
            self._paused_until = now + self._pause
        left = self._paused_until - now
        return ChannelUnavailable(
            f"{reason}; email paused for {left:.0f}s", code=code, retry_after=left
        )

    @property
    def paused_for(self) -> float:
        """Seconds the channel stays paused (0 when it is not)."""
        return max(self._paused_until - time.monotonic(), 0.0)

    def signed(self, message: bytes) -> bytes:
        """`message` as it goes on the wire: DKIM-signed when a key is set."""
        return message if self._signer is None else self._signer.sign(message)

    async def send(
        self, message: bytes, /, *, sender: str, recipient: str, signed: bool = False
    ) -> None:
        """Deliver `message` to `recipient` in one SMTP transaction, or raise.

        Failures are classified by whose fault they are. Ours (authentication refused, the
        sender refused, the relay unreachable or failing TLS) raise `ChannelUnavailable`
        and pause the channel, so nothing else is tried until the pause ends; the
        recipient's (5xx to RCPT) raise a `PermanentDeliveryError` marked as a bounce;
        4xx replies are temporary. The whole transaction (connecting included) is bounded
        by the timeout, not only each command.
        """
        if self.paused_for > 0:
            raise ChannelUnavailable(
                f"email paused for {self.paused_for:.0f}s more after the last failure",
                retry_after=self.paused_for,
            )
        if not signed:
            message = self.signed(message)
        async with self._slots:
            client: aiosmtplib.SMTP | None = None
            healthy = False
            try:
                async with asyncio.timeout(self._timeout):
                    try:
                        client = await self._checkout()
                    except aiosmtplib.SMTPAuthenticationError as exc:
                        raise self._unavailable(
                            f"SMTP login refused: {exc.code}", code=exc.code
                        ) from None
                    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
                        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
                            raise
                        raise self._unavailable(
                            f"cannot reach the mail server: {type(exc).__name__}: {exc}"
                        ) from None
                    await client.sendmail(sender, [recipient], message)
                healthy = True
                self._pause = 0.0
            except ChannelUnavailable:
                raise
            except aiosmtplib.SMTPRecipientsRefused as exc:
                healthy = True  # the connection is fine; this recipient is not
                refusal = exc.recipients[0]
                raise _error(
                    refusal.code, f"{recipient} refused: {refusal.message}", bounce=True
                ) from None
            except aiosmtplib.SMTPRecipientRefused as exc:
                healthy = True
                raise _error(exc.code, f"{recipient} refused: {exc.message}", bounce=True) from None
            except aiosmtplib.SMTPSenderRefused as exc:
                healthy = True
                raise self._unavailable(
                    f"SMTP {exc.code}: our sender {exc.sender} refused: {exc.message}",
                    code=exc.code,
                ) from None
            except aiosmtplib.SMTPDataError as exc:
                healthy = True
                raise _error(exc.code, exc.message) from None
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code in OUR_FAULT:
                    raise self._unavailable(
                        f"SMTP {exc.code}: {exc.message}", code=exc.code
                    ) from None
                raise _error(exc.code, exc.message) from None
            except (TimeoutError, aiosmtplib.SMTPTimeoutError):
                raise DeliveryTimeout(f"SMTP: no answer within {self._timeout:g}s") from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise TemporaryDeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from None
            finally:
                if client is not None:
                    if healthy and client.is_connected:
                        self._idle.put_nowait(client)
                    else:
                        self._open.discard(client)
                        client.close()


#: SMTP replies that are about us, not the recipient: authentication required or refused,
#: encryption required (RFC 4954, RFC 3207).
OUR_FAULT = frozenset({530, 534, 535, 538})
#: The first pause after the channel fails, and the longest it doubles to.
PAUSE_FIRST = 5.0
PAUSE_LONGEST = 300.0


def _error(
    code: int, message: str, *, bounce: bool = False
) -> TemporaryDeliveryError | PermanentDeliveryError:
    text = f"SMTP {code}: {message}"
    if 400 <= code < 500:
        return TemporaryDeliveryError(text, code=code)
    return PermanentDeliveryError(text, code=code, bounce=bounce)
