"""Signed one-click unsubscribe tokens: per subscriber, channel and address, tamper-evident.

A token names the subscriber, the channel and a short digest of the address it was mailed
to, and is signed with the installation's key. The digest binds the link to that address:
once a subscriber's address changes, links in mails sent to the old address no longer
unsubscribe the new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from notifier.domain.recipients import normal_address


def new_key() -> str:
    """A fresh random signing key (stored once per installation, in the database)."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def address_tag(address: str) -> str:
    """A short digest of an address (case and surrounding space ignored)."""
    return _b64(hashlib.sha256(normal_address(address).encode()).digest()[:9])


@dataclass(frozen=True, kw_only=True)
class UnsubscribeSubject:
    """What a valid token names."""

    subscriber_id: str
    channel: str
    #: `address_tag` of the address the link was sent to.
    tag: str

    def sent_to(self, address: str | None) -> bool:
        """Whether the link was sent to `address`."""
        return address is not None and hmac.compare_digest(self.tag, address_tag(address))


def _mac(key: str, subject: bytes) -> bytes:
    return hmac.new(key.encode(), b"unsubscribe\x00" + subject, hashlib.sha256).digest()[:18]


def unsubscribe_token(key: str, subscriber_id: str, channel: str, address: str) -> str:
    """A URL-safe token naming `subscriber_id`, `channel` and `address`, signed with `key`."""
    subject = f"{subscriber_id}:{channel}:{address_tag(address)}".encode()
    return f"{_b64(subject)}.{_b64(_mac(key, subject))}"


def read_unsubscribe_token(key: str, token: str) -> UnsubscribeSubject | None:
    """What a token signed with `key` names, or None if it is tampered with or malformed.

    Tokens from before addresses were bound (two parts) are refused: they cannot say which
    address they were sent to.
    """
    try:
        subject_text, _, mac_text = token.partition(".")
        subject = _unb64(subject_text)
        mac = _unb64(mac_text)
    except (ValueError, UnicodeError):
        return None
    if not hmac.compare_digest(mac, _mac(key, subject)):
        return None
    parts = subject.decode(errors="replace").split(":")
    if len(parts) != 3 or not all(parts):
        return None
    return UnsubscribeSubject(subscriber_id=parts[0], channel=parts[1], tag=parts[2])


#: What a subscriber's link opens: the manage page, or their private calendar.
LINK_PURPOSES = frozenset({"manage", "calendar"})


def _link_mac(key: str, purpose: str, subject: bytes, salt: str) -> bytes:
    message = purpose.encode() + b"\x00" + subject + b"\x00" + salt.encode()
    return hmac.new(key.encode(), message, hashlib.sha256).digest()[:18]


def link_token(key: str, purpose: str, subscriber_id: str, salt: str) -> str:
    """A subscriber's manage or calendar link token, signed with `key` and the subscriber's
    `salt` (a new salt retires every earlier link)."""
    assert purpose in LINK_PURPOSES
    subject = subscriber_id.encode()
    return f"{_b64(subject)}.{_b64(_link_mac(key, purpose, subject, salt))}"


def link_subject(token: str) -> str | None:
    """The subscriber a link token names, unchecked (check it with `link_valid`)."""
    head, sep, _ = token.partition(".")
    if not sep or len(token) > 300:
        return None
    try:
        return _unb64(head).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def link_valid(key: str, purpose: str, token: str, salt: str) -> bool:
    """Whether `token` is a current `purpose` link of the subscriber it names."""
    subject = link_subject(token)
    if subject is None:
        return False
    return hmac.compare_digest(token, link_token(key, purpose, subject, salt))


def new_secret() -> tuple[str, str]:
    """A random one-time token and the SHA-256 hex digest that is stored instead of it."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    """The stored form of a one-time token (or an address)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


# -- return paths (VERP) -----------------------------------------------------------------------

#: Delivery ids as `notifier.domain.outbox.delivery_id` makes them: 32 hex digits.
_DELIVERY_HEX = 32
#: A bounce token: 26 base32 characters of the delivery id, then 16 of its signature.
BOUNCE_TOKEN_LENGTH = 42


def _b32(data: bytes) -> str:
    return base64.b32encode(data).rstrip(b"=").decode().lower()


def _unb32(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


def _bounce_mac(key: str, raw_id: bytes, address: str) -> bytes:
    message = b"bounce\x00" + raw_id + b"\x00" + normal_address(address).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).digest()[:10]


def bounce_token(key: str, delivery_id: str, address: str) -> str | None:
    """The token of a per-delivery return path: it names `delivery_id` and is signed with
    `key` for the `address` the message goes to; 42 characters of lower-case base32 (safe
    in a local part, whatever case a relay folds it to). None for an id of another shape
    (such a message keeps the plain sender)."""
    hex_id = delivery_id.removeprefix("msg_")
    if len(hex_id) != _DELIVERY_HEX or not delivery_id.startswith("msg_"):
        return None
    try:
        raw_id = bytes.fromhex(hex_id)
    except ValueError:
        return None
    return _b32(raw_id) + _b32(_bounce_mac(key, raw_id, address))


def bounce_token_delivery(token: str) -> str | None:
    """The delivery id a bounce token names, unchecked (check it with `bounce_token_valid`);
    None when it is not a bounce token at all."""
    if len(token) != BOUNCE_TOKEN_LENGTH or not token.isascii() or not token.isalnum():
        return None
    try:
        raw_id = _unb32(token[:26])
        _unb32(token[26:])
    except ValueError:
        return None
    return "msg_" + raw_id.hex()


def bounce_token_valid(key: str, token: str, address: str) -> bool:
    """Whether `token` was signed with `key` for a message to `address`."""
    delivery = bounce_token_delivery(token)
    if delivery is None:
        return False
    expected = bounce_token(key, delivery, address)
    return expected is not None and hmac.compare_digest(token.lower(), expected)


def return_path(bounce_address: str, token: str) -> str:
    """``local+token@domain`` from the configured ``local@domain``."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_of_return_path(bounce_address: str, recipient: str) -> str | None:
    """The token in `recipient` when it is a return path of `bounce_address` (compared
    without regard to case), else None."""
    local, _, domain = bounce_address.lower().rpartition("@")
    their_local, at, their_domain = recipient.strip().strip("<>").lower().rpartition("@")
    head, plus, token = their_local.partition("+")
    if not at or their_domain != domain or head != local or not plus:
        return None
    return token if bounce_token_delivery(token) is not None else None
