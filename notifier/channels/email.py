"""Email over aiosmtplib through a small pool of reused connections.

`send` takes the message as bytes, already built for its one recipient, and raises
`TemporaryDeliveryError` (SMTP 4xx, timeouts, dropped connections) or
`PermanentDeliveryError` (SMTP 5xx) carrying the SMTP code.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Literal

import aiosmtplib

from notifier.domain.errors import (
    DeliveryTimeout,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)


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
    ) -> None:
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

    async def send(self, message: bytes, /, *, sender: str, recipient: str) -> None:
        """Deliver `message` to `recipient` in one SMTP transaction, or raise.

        The whole transaction (connecting included) is bounded by the timeout, not only
        each command: a server that answers a byte at a time cannot hold a worker.
        """
        async with self._slots:
            client: aiosmtplib.SMTP | None = None
            healthy = False
            try:
                async with asyncio.timeout(self._timeout):
                    client = await self._checkout()
                    await client.sendmail(sender, [recipient], message)
                healthy = True
            except aiosmtplib.SMTPRecipientsRefused as exc:
                healthy = True  # the connection is fine; this recipient is not
                refusal = exc.recipients[0]
                raise _error(refusal.code, f"{recipient} refused: {refusal.message}") from None
            except (
                aiosmtplib.SMTPRecipientRefused,
                aiosmtplib.SMTPSenderRefused,
                aiosmtplib.SMTPDataError,
            ) as exc:
                healthy = True
                raise _error(exc.code, exc.message) from None
            except aiosmtplib.SMTPResponseException as exc:
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


def _error(code: int, message: str) -> TemporaryDeliveryError | PermanentDeliveryError:
    text = f"SMTP {code}: {message}"
    if 400 <= code < 500:
        return TemporaryDeliveryError(text, code=code)
    return PermanentDeliveryError(text, code=code)
