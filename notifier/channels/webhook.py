"""Webhooks over aiohttp, signed per Standard Webhooks, refusing private targets.

One pooled `aiohttp.ClientSession` for the whole process; redirects are not followed and
environment proxies are ignored. The session's resolver drops every address the SSRF policy
refuses, so the socket can only connect to addresses that were checked.
"""

from __future__ import annotations

import base64
import functools
import hmac
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from notifier.domain.addresses import Network, address_allowed, host_allowed
from notifier.domain.errors import (
    DeliveryTimeout,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from notifier.egress import RefusedAddress


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(_key(secret), signed, "sha256")).decode()


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = 300,
) -> bool:
    """Whether a received request is signed by one of `secrets` (its ``webhook-id``,
    ``webhook-timestamp`` within `tolerance` seconds of `now`, ``webhook-signature``): what
    a receiver checks, for the bundled receiver and the demo."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "0")
    offered = headers.get("webhook-signature", "").split()
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return any(sign(secret, msg_id, int(stamp), body) in offered for secret in secrets)


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret, space-separated, so a rotated-in secret verifies too."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


class FilteringResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, minus the addresses the policy refuses."""

    def __init__(self, allow: Sequence[Network]) -> None:
        self._inner = DefaultResolver()
        self._allow = tuple(allow)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of `host`; `RefusedAddress` when none is."""
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if address_allowed(r["host"], self._allow)]
        if not allowed:
            raise RefusedAddress(f"{host} resolves only to refused addresses")
        return allowed

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


class WebhookChannel:
    """Sends webhook POSTs through one pooled session."""

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        allow: Sequence[Network] = (),
        concurrency: int = 64,
        user_agent: str = "notifier",
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._allow = tuple(allow)
        self._concurrency = concurrency
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        #: Refusals by (scheme, host): few distinct hosts serve many readers' URLs.
        self._checked: dict[tuple[str, str], str | None] = {}

    async def __aenter__(self) -> WebhookChannel:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, resolver=FilteringResolver(self._allow), ttl_dns_cache=60
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, trust_env=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_target(self, url: str) -> URL:
        """The parsed URL, or `PermanentDeliveryError` when it is not http(s) or its host is
        a refused IP literal (names are checked on connect, by the resolver)."""
        try:
            parsed = URL(url)
        except (TypeError, ValueError):
            raise PermanentDeliveryError(f"not an http(s) URL: {url}") from None
        key = (parsed.scheme, parsed.raw_host or "")
        if key not in self._checked:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[key] = _refusal(key, url, self._allow)
        refusal = self._checked[key]
        if refusal is not None:
            raise PermanentDeliveryError(refusal)
        return parsed

    async def send(
        self,
        url: str,
        body: bytes,
        /,
        *,
        msg_id: str,
        secrets: Sequence[str],
    ) -> int:
        """POST `body` to `url`, signed; return the 2xx status or raise a delivery error.

        The signature's timestamp is the wall-clock time of this attempt, as receivers
        check it against their own clock.
        """
        if self._session is None:
            raise RuntimeError("use WebhookChannel as an async context manager")
        target = self.check_target(url)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": self._user_agent,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        }
        try:
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return status
                detail = (await response.content.read(200)).decode(errors="replace").strip()
                message = f"HTTP {status}" + (f": {detail}" if detail else "")
                if status == 410:
                    raise PermanentDeliveryError(
                        message + " (endpoint gone)", code=status, gone=True
                    )
                if status in (408, 429) or status >= 500:
                    raise TemporaryDeliveryError(
                        message,
                        code=status,
                        retry_after=retry_after_seconds(
                            response.headers.get("Retry-After"), now=datetime.now(UTC)
                        ),
                    )
                raise PermanentDeliveryError(message, code=status)
        except aiohttp.ClientConnectorError as exc:
            if _refused(exc):
                raise PermanentDeliveryError(
                    f"refused target {urlsplit(url).hostname}: resolves only to private, "
                    "loopback or link-local addresses (allow with webhooks.allow_cidrs)"
                ) from None
            raise TemporaryDeliveryError(f"cannot connect: {exc}") from None
        except TimeoutError:
            raise DeliveryTimeout(f"timed out after {self._timeout.total:g}s") from None
        except aiohttp.ClientError as exc:
            raise TemporaryDeliveryError(f"{type(exc).__name__}: {exc}") from None


def _refusal(key: tuple[str, str], url: str, allow: Sequence[Network]) -> str | None:
    scheme, host = key
    if scheme not in ("http", "https") or not host:
        return f"not an http(s) URL: {url}"
    if host_allowed(host, allow) is False:
        return (
            f"refused target {host}: private, loopback or link-local address "
            "(allow it with webhooks.allow_cidrs)"
        )
    return None


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RefusedAddress):
            return True
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return False
