"""Which network addresses outbound requests may reach (server-side request forgery protection).

One policy for every request notifier makes on someone else's say-so: webhooks, feed polls.
An address is judged by where it really leads: an IPv6 address that carries an IPv4 one
(IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address it carries,
and only globally routable unicast addresses pass, unless an operator allowed a range.
Python's own `is_global` is not relied on alone: before 3.13 it calls site-local ``fec0::/10``,
NAT64 and 6to4 addresses global.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network

#: Shortest prefix an allow list may hold: a wider range would switch the protection off.
MIN_ALLOW_PREFIX = 8

_NOT_GLOBAL_V4 = tuple(
    ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_NOT_GLOBAL_V6 = tuple(
    ip_network(n)
    for n in (
        "::/8",  # unspecified, loopback, IPv4-compatible (judged by their IPv4 first)
        "64:ff9b:1::/48",  # local-use NAT64: where it leads is the operator's secret
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo is judged by its IPv4 first)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ip_network("64:ff9b::/96")
_COMPATIBLE = ip_network("::/96")


def embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to, if it is one of the kinds that carry one."""
    found: list[IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        found.append(IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client): both are where packets go
    return found


def _routable(ip: IPv4Address | IPv6Address) -> bool:
    table = _NOT_GLOBAL_V4 if isinstance(ip, IPv4Address) else _NOT_GLOBAL_V6
    if any(ip in net for net in table):
        return False
    return ip.is_global and not ip.is_multicast


def address_allowed(address: str, allow: Sequence[Network] = ()) -> bool:
    """Whether an outbound request may connect to `address` (an IP literal).

    Allowed when inside one of `allow`; otherwise only globally routable unicast addresses
    are: private, loopback, link-local (which holds cloud metadata at 169.254.169.254),
    site-local, shared, reserved, documentation, unspecified and multicast ones are
    refused. An IPv6 address carrying an IPv4 one is allowed only if every IPv4 address it
    carries is.
    """
    try:
        ip: IPv4Address | IPv6Address = ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if any(ip.version == net.version and ip in net for net in allow):
        return True
    if isinstance(ip, IPv6Address):
        carried = embedded_ipv4(ip)
        if carried:
            return all(address_allowed(str(v4), allow) for v4 in carried)
    return _routable(ip)


def host_allowed(host: str, allow: Sequence[Network] = ()) -> bool | None:
    """For a URL host: True/False when it is an IP literal or ``localhost``, else None.

    None means the name must be resolved, and every address it resolves to checked (when
    a subscriber is saved, and again at connect time).
    """
    bare = host.strip("[]").lower().rstrip(".")
    if bare == "localhost" or bare.endswith(".localhost"):
        return address_allowed("127.0.0.1", allow)
    try:
        ip_address(bare.split("%", 1)[0])
    except ValueError:
        return None
    return address_allowed(bare, allow)


def allow_range_problem(network: Network) -> str | None:
    """Why an allow-list entry is refused (it would open everything), or None."""
    if network.prefixlen < MIN_ALLOW_PREFIX:
        return (
            f"{network} opens far more than a private target: allow-list entries need a "
            f"prefix of at least /{MIN_ALLOW_PREFIX} (list the receiver's own address, "
            "such as 10.0.5.7/32)"
        )
    return None


def is_loopback_host(host: str) -> bool:
    """Whether a URL host is ``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    bare = host.strip("[]").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    try:
        return ip_address(bare.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
