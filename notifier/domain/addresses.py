"""Which network addresses webhooks may reach (server-side request forgery protection)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network


def address_allowed(address: str, allow: Sequence[Network] = ()) -> bool:
    """Whether a webhook may connect to `address` (an IP literal).

    Allowed when inside one of `allow`; otherwise only globally routable unicast addresses
    are: private, loopback, link-local (which holds cloud metadata at 169.254.169.254),
    shared, reserved, unspecified and multicast ones are refused. IPv4-mapped IPv6
    addresses are judged as the IPv4 address they carry.
    """
    try:
        ip: IPv4Address | IPv6Address = ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in allow):
        return True
    return ip.is_global and not ip.is_multicast


def host_allowed(host: str, allow: Sequence[Network] = ()) -> bool | None:
    """For a URL host: True/False when it is an IP literal or ``localhost``, else None.

    None means the name must be resolved, and every address it resolves to checked at
    connect time.
    """
    bare = host.strip("[]").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return address_allowed("127.0.0.1", allow)
    try:
        ip_address(bare.split("%", 1)[0])
    except ValueError:
        return None
    return address_allowed(bare, allow)


def is_loopback_host(host: str) -> bool:
    """Whether a URL host is ``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    bare = host.strip("[]").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    try:
        return ip_address(bare.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
