"""Signed one-click unsubscribe tokens: per subscriber and channel, tamper-evident."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_key() -> str:
    """A fresh random signing key (stored once per installation, in the database)."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(key: str, subscriber_id: str, channel: str) -> str:
    """A URL-safe token naming `subscriber_id` and `channel`, signed with `key`."""
    subject = f"{subscriber_id}:{channel}".encode()
    mac = hmac.new(key.encode(), b"unsubscribe\x00" + subject, hashlib.sha256).digest()
    return f"{_b64(subject)}.{_b64(mac[:18])}"


def read_unsubscribe_token(key: str, token: str) -> tuple[str, str] | None:
    """(subscriber id, channel) from a token signed with `key`, or None if tampered."""
    try:
        subject_text, _, mac_text = token.partition(".")
        subject = _unb64(subject_text)
        mac = _unb64(mac_text)
    except (ValueError, UnicodeError):
        return None
    expected = hmac.new(key.encode(), b"unsubscribe\x00" + subject, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(mac, expected):
        return None
    subscriber_id, _, channel = subject.decode(errors="replace").rpartition(":")
    return (subscriber_id, channel) if subscriber_id and channel else None
