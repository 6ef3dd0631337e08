"""An IMAP mailbox named by a URL (``imaps://user:password@host/INBOX``), as
``[bounces] imap`` gives it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from notifier.domain.addresses import is_loopback_host


@dataclass(frozen=True, kw_only=True)
class Mailbox:
    """Where to log in and which folder to read."""

    #: TLS from the first byte (``imaps``); plain ``imap`` only to a loopback host.
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    def __repr__(self) -> str:  # the password never shows in a log or a traceback
        scheme = "imaps" if self.secure else "imap"
        return f"Mailbox({scheme}://{self.user}@{self.host}:{self.port}/{self.folder})"


def read_mailbox_url(url: str) -> Mailbox:
    """The mailbox `url` names; `ValueError` saying what is wrong (never the password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("the IMAP mailbox URL must start with imaps:// (or imap:// to loopback)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the IMAP mailbox URL has a bad port") from None
    host = parts.hostname or ""
    if not host or not parts.username or parts.password is None:
        raise ValueError("the IMAP mailbox URL needs user:password@host")
    if parts.scheme == "imap" and not is_loopback_host(host):
        raise ValueError(f"imap:// to {host} would send the password unencrypted: use imaps://")
    if parts.query or parts.fragment:
        raise ValueError("the IMAP mailbox URL may not have a query or fragment")
    return Mailbox(
        secure=parts.scheme == "imaps",
        host=host,
        port=port or (993 if parts.scheme == "imaps" else 143),
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )
