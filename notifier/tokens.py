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


def new_key() -> str:
    """A fresh random signing key (stored once per installation, in the database)."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def address_tag(address: str) -> str:
    """A short digest of an address (case and surrounding space ignored)."""
    return _b64(hashlib.sha256(address.strip().lower().encode()).digest()[:9])


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
