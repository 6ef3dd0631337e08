"""Chat and push services through Apprise (Telegram, Slack, Matrix, Teams, ntfy, ...).

Apprise speaks to a hundred services, but its calls block: each send runs in a bounded
thread pool so the event loop never waits on one, with a timeout per send (and Apprise's
own socket timeouts set to the same). Which services may be used is the operator's
choice (`notify.schemes`); services whose host the user picks (json, xml, form, ntfy,
matrix, gotify, and other self-hosted forms) go through the same address policy as
webhooks, checked when the subscriber is saved and again before every send.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from notifier.channels.pinning import Resolver, pinned, system_resolver
from notifier.domain.addresses import Network
from notifier.domain.errors import (
    DeliveryTimeout,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from notifier.egress import RefusedAddress, allowed_addresses

#: Schemes whose host is whatever the URL says: checked against the address policy.
USER_HOSTED = frozenset(
    {
        "json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys", "gotify", "gotifys",
        "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets", "apprise", "apprises",
        "nctalk", "nctalks", "ncloud", "nclouds", "signal", "signals", "lametric",
        "lametrics", "rsyslog", "syslog", "mqtt", "mqtts", "workflow", "workflows",
    }
)  # fmt: skip
#: The default allow list (`notify.schemes`): well-known services and the self-hosted
#: forms people use most; anything else must be listed by the operator.
DEFAULT_SCHEMES = (
    "tgram", "slack", "discord", "msteams", "workflows", "matrix", "matrixs", "ntfy",
    "ntfys", "gotify", "gotifys", "mmost", "mmosts", "rocket", "rockets", "pover",
    "signal", "signals", "json", "jsons",
)  # fmt: skip


class HideUrls(logging.Filter):
    """Apprise's own log lines name the URL with only part of each token masked
    (``tgram://1...b`` is the whole of a two-letter token, a token given as a user name is
    shown in full) and, at DEBUG, the request headers with their bearer tokens. Its DEBUG
    and INFO lines are dropped; in the others every URL becomes ``scheme://(hidden)`` and
    every credential ``(hidden)``, before any handler sees them."""

    _URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,20})://\S+", re.IGNORECASE)
    _SCHEME = re.compile(r"\b(bearer|basic)\s+[^\s'\",}]+", re.IGNORECASE)
    _CREDENTIAL = re.compile(
        r"(token|key|secret|password|authorization)(['\"]?\s*[:=]?\s*['\"]?\s*)"
        r"[^\s'\",}]+",
        re.IGNORECASE,
    )

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop Apprise's DEBUG and INFO lines; rewrite the rest with secrets hidden."""
        if record.levelno < logging.WARNING:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep nothing of its arguments
            message = str(record.msg)
        message = self._SCHEME.sub(r"\1 (hidden)", self._URL.sub(r"\1://(hidden)", message))
        record.msg, record.args = self._CREDENTIAL.sub(r"\1\2(hidden)", message), None
        return True


logging.getLogger("apprise").addFilter(HideUrls())


def scheme_of(url: str) -> str:
    """The scheme of an Apprise URL, lower case ("" when there is none)."""
    head, sep, _ = url.partition("://")
    return head.strip().lower() if sep else ""


def url_problem(url: str, schemes: Sequence[str]) -> str | None:
    """Why `url` cannot be used (not an Apprise URL, or a scheme not allowed), or None.
    Never repeats the URL: it holds the service's token."""
    scheme = scheme_of(url)
    if not scheme:
        return "not an Apprise URL (scheme://...)"
    if scheme not in schemes:
        return f"scheme {scheme!r} is not allowed (notify.schemes: {', '.join(schemes)})"
    if _where(url) is None:
        return f"Apprise cannot read this {scheme}:// URL (see its wiki for the form)"
    return None


@functools.lru_cache(maxsize=4096)
def _where(url: str) -> tuple[str, int | None] | None:
    """What Apprise reads of `url`: its host ("" for a service at a fixed address) and
    port; None when it cannot read it. Parsed once per URL (a parse costs more than a send
    to a fast receiver)."""
    import apprise  # imported on first use: every CLI command starts sooner without it

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    port = getattr(plugin, "port", None)
    return str(getattr(plugin, "host", "") or ""), port if isinstance(port, int) else None


async def host_problem(url: str, allow: Sequence[Network]) -> str | None:
    """Why a user-hosted service's host is refused by the address policy, or None."""
    if scheme_of(url) not in USER_HOSTED:
        return None
    where = _where(url)
    if where is None or not where[0]:
        return None
    host, given = where
    port = given or (443 if scheme_of(url).endswith("s") else 80)
    try:
        await allowed_addresses(str(host), int(port), allow)
    except RefusedAddress:
        return (
            f"host {host} is, or resolves only to, a private, loopback, link-local or "
            "reserved address (allow it with webhooks.allow_cidrs)"
        )
    except (OSError, TimeoutError):
        return f"cannot resolve host {host}"
    return None


class ChatChannel:
    """Sends one message to one Apprise URL at a time, off the event loop."""

    def __init__(
        self,
        *,
        timeout: float,
        threads: int,
        allow: Sequence[Network],
        schemes: Sequence[str],
        resolve: Resolver = system_resolver,
    ) -> None:
        self.timeout = timeout
        self.allow = list(allow)
        #: How the pool threads resolve names (a test's own resolver stands in here).
        self.resolve = resolve
        self.schemes = tuple(schemes)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notify")
        self._slots = asyncio.Semaphore(threads)

    async def __aenter__(self) -> ChatChannel:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def send(self, url: str, *, title: str, markdown: str, text: str) -> None:
        """Send one message, as Markdown where the service renders it and as plain `text`
        elsewhere; `PermanentDeliveryError` for a URL that cannot be used (or a host the
        address policy refuses), `TemporaryDeliveryError` (or `DeliveryTimeout`) when the
        service does not take it."""
        scheme = scheme_of(url)
        if scheme not in self.schemes:
            raise PermanentDeliveryError(
                f"scheme {scheme!r} is not allowed (notify.schemes: {', '.join(self.schemes)})"
            )
        loop = asyncio.get_running_loop()
        async with self._slots:
            try:
                outcome = await asyncio.wait_for(
                    loop.run_in_executor(self._pool, self._notify, url, title, markdown, text),
                    self.timeout,
                )
            except TimeoutError:
                raise DeliveryTimeout(f"{scheme}:// did not answer in time") from None
        if outcome is not None:
            raise PermanentDeliveryError(outcome)

    def _notify(self, url: str, title: str, markdown: str, text: str) -> str | None:
        """In a pool thread: read the URL once, then send with every connection of the
        thread pinned to the address policy (`notifier.channels.pinning`): a user-hosted
        service's host is resolved and checked once and the send connects only to what
        that check allowed; no redirect is followed and no proxy from the environment is
        used, whatever the scheme. Returns why the URL cannot be used, None when sent;
        raises `TemporaryDeliveryError` when the service does not take the message."""
        import apprise
        from apprise import NotifyFormat, OverflowMode

        scheme = scheme_of(url)
        plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            return f"Apprise cannot read this {scheme}:// URL (see its wiki for the form)"
        host = str(getattr(plugin, "host", "") or "")
        # Apprise's own timeouts no longer than ours, so a thread is not held past the send.
        plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, self.timeout)
        plugin.socket_read_timeout = min(plugin.socket_read_timeout, self.timeout)
        formats = plugin.notify_format
        formats = tuple(formats) if isinstance(formats, tuple | list) else (formats,)
        # Markdown to services that render it by preference; plain text to the rest
        # (a JSON or ntfy receiver would show the asterisks).
        rich = NotifyFormat.MARKDOWN in formats and formats[0] is not NotifyFormat.TEXT
        with pinned(self.allow, self.resolve) as pin:
            if scheme in USER_HOSTED and host:
                port = getattr(plugin, "port", None) or (443 if scheme.endswith("s") else 80)
                try:
                    pin.lookup(host, int(port))
                except socket.gaierror:
                    return (
                        _REFUSED.format(host=host)
                        if pin.refused
                        else (f"cannot resolve host {host}")
                    )
            # The plugin itself, not an Apprise() around it: that would start a thread pool
            # of its own for every message (a third of the cost of a send to a fast
            # receiver); each message kept within its service's limit.
            sent = plugin.notify(
                body=markdown if rich else text,
                title=title,
                body_format=NotifyFormat.MARKDOWN if rich else NotifyFormat.TEXT,
                overflow=OverflowMode.TRUNCATE,
            )
        if pin.refused:
            return _REFUSED.format(host=pin.refused[0])
        if pin.redirected is not None:
            raise TemporaryDeliveryError(
                f"{scheme}:// answered a redirect ({pin.redirected}), which is not followed"
            )
        if not sent:
            raise TemporaryDeliveryError(f"{scheme}:// did not take the message")
        return None


_REFUSED = (
    "host {host} is, or resolves only to, a private, loopback, link-local or reserved "
    "address (allow it with webhooks.allow_cidrs)"
)
