"""Outbound connections of a blocking library, held to the address policy in one thread.

Apprise sends through `requests`, `paho-mqtt`, plain sockets and more, each resolving and
connecting on its own: a check made before the send can be swapped by a second lookup (DNS
rebinding), a name with one allowed and one refused address passes a check and then
connects to the refused one, a redirect or an ``HTTP_PROXY`` takes the request elsewhere.
None of them can be given a resolver. So while a thread is inside `pinned`, this module
stands between it and the network, whatever library it runs:

- every name is resolved once (by the pin's resolver) and only its allowed addresses are
  kept: each later lookup of that name in the send gets the same answer;
- a name none of whose addresses is allowed does not resolve (``socket.gaierror``);
- ``connect``, ``connect_ex`` and ``sendto`` reach only an address that a lookup of the
  pin returned, or an allowed IP literal: anything else is refused before a packet leaves;
- `requests` follows no redirect (a 3xx is the answer, and recorded) and uses no proxy from
  the environment.

Threads outside `pinned` (the event loop, every other library) see the stdlib unchanged:
the hooks are installed once and consult a thread-local, nothing else.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from notifier.domain.addresses import Network, address_allowed, host_allowed

#: Resolves a host name to IP addresses (the stdlib's ``getaddrinfo`` by default).
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order (duplicates dropped)."""
    found = _real_getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass
class Pin:
    """What one send may reach, and what it tried that it may not."""

    allow: Sequence[Network]
    resolve: Resolver
    #: Host name (lower case) -> the allowed addresses it resolved to, once.
    names: dict[str, list[str]] = field(default_factory=dict)
    #: Every address a lookup returned: the only ones ``connect`` reaches.
    reachable: set[str] = field(default_factory=set)
    #: Hosts or addresses refused during the send, in order (for the delivery's reason).
    refused: list[str] = field(default_factory=list)
    #: A redirect answered (its status), which was not followed.
    redirected: int | None = None

    def lookup(self, host: str, port: int) -> list[str]:
        """The allowed addresses of `host`, resolved at most once per send; raises
        ``socket.gaierror`` when there are none (refused, or the name does not resolve)."""
        bare = host.strip("[]")
        key = bare.lower().rstrip(".")
        if key in self.names:
            return self.names[key]
        literal = host_allowed(bare, self.allow)
        if literal is not None:
            if not literal:
                self.refused.append(bare)
                raise socket.gaierror(socket.EAI_NONAME, f"{bare}: refused by the address policy")
            addresses = ["127.0.0.1" if key.endswith("localhost") else bare]
        else:
            try:
                found = self.resolve(bare, port)
            except OSError as exc:
                raise socket.gaierror(socket.EAI_NONAME, f"cannot resolve {bare}: {exc}") from None
            addresses = [a for a in found if address_allowed(a, self.allow)]
            if not addresses:
                self.refused.append(bare)
                raise socket.gaierror(
                    socket.EAI_NONAME, f"{bare}: resolves only to refused addresses"
                )
        self.names[key] = addresses
        self.reachable.update(a.split("%", 1)[0] for a in addresses)
        return addresses

    def may_reach(self, address: Any) -> bool:
        """Whether a socket of the send may connect (or send) to `address`."""
        if not isinstance(address, tuple) or not address:
            return False  # a Unix socket, or something that is no IP address
        ip = str(address[0]).strip("[]").split("%", 1)[0]
        if ip in self.reachable:
            return True
        if address_allowed(ip, self.allow):
            # An allowed IP literal given straight to connect(): pin it as if looked up.
            self.reachable.add(ip)
            return True
        self.refused.append(ip)
        return False


_local = threading.local()
_installed = threading.Lock()
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


def current() -> Pin | None:
    """The pin of this thread's send, or None outside `pinned`."""
    return getattr(_local, "pin", None)


@contextmanager
def pinned(allow: Sequence[Network], resolve: Resolver = system_resolver) -> Iterator[Pin]:
    """Hold this thread's outbound connections to the policy `allow` until the block ends."""
    install()
    pin = Pin(allow=allow, resolve=resolve)
    _local.pin = pin
    try:
        yield pin
    finally:
        _local.pin = None


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    pin = current()
    if pin is None or host is None:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    name = host.decode() if isinstance(host, bytes) else str(host)
    number = int(port) if isinstance(port, int) or str(port).isdigit() else 0
    answers = []
    for address in pin.lookup(name, number):
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family not in (0, socket.AF_UNSPEC, kind):
            continue
        sockaddr: tuple[Any, ...] = (
            (address, number, 0, 0)
            if kind == socket.AF_INET6
            else (
                address,
                number,
            )
        )
        answers.append((kind, type or socket.SOCK_STREAM, proto, "", sockaddr))
    if not answers:
        raise socket.gaierror(socket.EAI_FAMILY, f"{name}: no allowed address of that family")
    return answers


def _refuse(address: Any) -> OSError:
    return ConnectionRefusedError(f"{address!r}: refused by notifier's address policy")


def _connect(self: socket.socket, address: Any) -> None:
    pin = current()
    if pin is not None and not pin.may_reach(address):
        raise _refuse(address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    pin = current()
    if pin is not None and not pin.may_reach(address):
        raise _refuse(address)
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *rest: Any) -> int:
    pin = current()
    if pin is not None and rest and not pin.may_reach(rest[-1]):
        raise _refuse(rest[-1])
    return _real_sendto(self, data, *rest)


def install() -> None:
    """Put the hooks in place (once; harmless to call again)."""
    with _installed:
        if socket.getaddrinfo is _getaddrinfo:
            return
        socket.getaddrinfo = _getaddrinfo
        socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]
        socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
        _install_requests()


def _install_requests() -> None:
    """`requests` in a pinned thread: no redirect followed, no proxy from the environment."""
    import requests.sessions

    real_send = requests.sessions.Session.send

    def send(self: requests.sessions.Session, request: Any, **kwargs: Any) -> Any:
        pin = current()
        if pin is None:
            return real_send(self, request, **kwargs)
        kwargs["allow_redirects"] = False
        kwargs["proxies"] = {}
        self.trust_env = False
        self.proxies = {}
        response = real_send(self, request, **kwargs)
        if 300 <= response.status_code < 400:
            pin.redirected = response.status_code
        return response

    requests.sessions.Session.send = send  # type: ignore[method-assign]
