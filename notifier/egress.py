"""Outbound requests made on someone else's say-so go only where the address policy allows.

Webhook URLs come from subscribers and feed URLs from the config; both could point inside
our network (cloud metadata, the database, an admin port). Every such request is judged by
the addresses it really connects to (`notifier.domain.addresses`): a host name is resolved
and only its allowed addresses are used, and the connection is made to the address that was
checked, so a second lookup (DNS rebinding) cannot swap it. Redirects are requests too and
pass the same check.

- `check_url` judges a URL when a subscriber is saved (`notifier.endpoints`: a name that
  resolves only to refused addresses is refused then, not discovered at the first send);
- `GuardedTransport` is the httpx transport for feed polling;
- webhooks use aiohttp with `notifier.channels.webhook.FilteringResolver`, the same policy.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ipaddress import ip_address
from urllib.parse import urlsplit

import httpx

from notifier.domain.addresses import Network, address_allowed, host_allowed


class RefusedAddress(OSError):
    """Every address of a host is refused by the SSRF policy."""


#: How long a name may take to resolve before the request is given up.
RESOLVE_TIMEOUT = 5.0


async def allowed_addresses(host: str, port: int, allow: Sequence[Network]) -> list[str]:
    """The addresses of `host` that `allow` and the policy accept, in resolver order.

    Raises `RefusedAddress` when none is, `OSError` (socket.gaierror) when the name does
    not resolve, `TimeoutError` when the resolver does not answer in `RESOLVE_TIMEOUT`.
    """
    bare = host.strip("[]")
    literal = host_allowed(bare, allow)
    if literal is not None:
        if not literal:
            raise RefusedAddress(f"{host} is a refused address")
        if bare.lower().rstrip(".") == "localhost" or bare.lower().endswith(".localhost"):
            return ["127.0.0.1"]
        return [bare]
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT):
        found = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    allowed = [a for a in addresses if address_allowed(a, allow)]
    if not allowed:
        raise RefusedAddress(f"{host} resolves only to refused addresses ({', '.join(addresses)})")
    return allowed


async def check_url(url: str, allow: Sequence[Network], *, what: str) -> str | None:
    """Why a request to `url` would be refused, or None when it may go out.

    Used when a subscriber is saved: an IP literal or ``localhost`` outside `allow`, or a
    name resolving only to refused addresses (or not at all), is refused then.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return f"{what}: not an http(s) URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await allowed_addresses(host, port, allow)
    except RefusedAddress:
        return (
            f"{what}: target {host} is, or resolves only to, a private, loopback, link-local "
            "or reserved address (allow it with its allow_cidrs)"
        )
    except (OSError, TimeoutError):
        return f"{what}: cannot resolve host {host}"
    return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses the policy allows.

    The request goes to the checked IP address; the Host header and the TLS server name
    (SNI, and so certificate verification) stay the URL's host name.
    """

    def __init__(self, allow: Sequence[Network], inner: httpx.AsyncBaseTransport | None = None):
        self._allow = tuple(allow)
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve and check the host, then send to the first allowed address."""
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            addresses = await allowed_addresses(host, port, self._allow)
        except RefusedAddress as exc:
            raise httpx.ConnectError(f"refused target: {exc}", request=request) from None
        except (OSError, TimeoutError) as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        target = addresses[0]
        if target != host.strip("[]"):
            try:
                ip_address(host.strip("[]"))
            except ValueError:
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=target)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
