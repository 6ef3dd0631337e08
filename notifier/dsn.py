"""Delivery status notifications (RFC 3464) read from their raw bytes.

Which addresses failed, and whether for good, is `flufl.bounce`'s to say (its detectors
know the DSNs of RFC 3464 and the shapes of many MTAs that stray from it); this module adds
what an operator wants to read beside it: the status code (RFC 3463), the remote server's
diagnostic, the reporting MTA and the date. A failure whose status is 4.x.x is soft, even
when the MTA says ``Action: failed`` (it gave up retrying a temporary problem).

The input is hostile: anything may arrive at a bounce address. A message larger than
`MAX_BYTES`, or one the parser chokes on, is `Unreadable`, never an exception.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import parseaddr, parsedate_to_datetime

from flufl.bounce import all_failures

from notifier.domain.recipients import normal_address
from notifier.domain.text import clean_text

# flufl.bounce logs a line per detector it runs at INFO (17 a DSN) and every detector's
# failure with its trace; a hostile DSN is expected here, and refused with one line.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

#: The largest DSN read (1 MiB): a real one is a few kilobytes plus the returned message.
MAX_BYTES = 1024 * 1024
#: At most this many per-recipient blocks are read from one DSN.
MAX_RECIPIENTS = 50

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True, kw_only=True)
class Failure:
    """One recipient the DSN says was not delivered to."""

    #: The failed address, in lower case.
    address: str
    #: A hard bounce (5.x.x): the address is no good. Otherwise soft: delayed, or given up.
    permanent: bool
    #: The RFC 3463 status, e.g. ``5.1.1``; empty when the DSN gives none.
    status: str = ""
    #: The remote server's words (``Diagnostic-Code``), cleaned and cut to 200 characters.
    diagnostic: str = ""


@dataclass(frozen=True, kw_only=True)
class Report:
    """What a DSN says."""

    failures: tuple[Failure, ...]
    #: The MTA that reported it (``Reporting-MTA``, else the sender's domain).
    reporting_mta: str
    #: The DSN's own Date, when it has a readable one.
    dated: datetime | None
    #: Names this DSN (a digest of its Message-ID, else of its bytes): the same DSN
    #: delivered twice is recorded once.
    dsn_id: str


@dataclass(frozen=True, kw_only=True)
class Unreadable:
    """Not a DSN that can be read, and why."""

    reason: str


def read_report(raw: bytes) -> Report | Unreadable:
    """What the DSN `raw` says, or why it cannot be read (never raises)."""
    if len(raw) > MAX_BYTES:
        return Unreadable(reason=f"larger than {MAX_BYTES} bytes")
    try:
        message = message_from_bytes(raw, policy=compat32)
        temporary, permanent = all_failures(message)
        details = _details(message)
        failures = _failures(temporary, permanent, details, message)
        return Report(
            failures=failures,
            reporting_mta=_reporting_mta(message),
            dated=_date(message),
            dsn_id=_dsn_id(message, raw),
        )
    except Exception as exc:  # hostile input: whatever the parsers trip on, it is refused
        return Unreadable(reason=f"cannot be parsed ({type(exc).__name__})")


def _text(value: object, limit: int = 200) -> str:
    return clean_text(str(value or ""))[:limit]


def _details(message: Message) -> dict[str, tuple[str, str]]:
    """Per recipient address (lower case): its Status and Diagnostic-Code."""
    found: dict[str, tuple[str, str]] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        blocks = part.get_payload()
        assert isinstance(blocks, list)
        for block in blocks[1:][:MAX_RECIPIENTS]:
            if not isinstance(block, Message):
                continue
            address = ""
            for header in ("Original-Recipient", "Final-Recipient"):
                _, _, value = str(block.get(header, "")).partition(";")
                address = address or parseaddr(value.strip())[1].lower()
            status_match = _STATUS.search(str(block.get("Status", "")))
            diagnostic = str(block.get("Diagnostic-Code", ""))
            _, semicolon, words = diagnostic.partition(";")
            if address:
                found[address] = (
                    status_match.group(0) if status_match else "",
                    _text(words if semicolon else diagnostic),
                )
    return found


def _body_status(message: Message) -> tuple[str, str]:
    """A status code written in a text part (a DSN with no machine-readable part), and
    the line that says it."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                for line in payload[:65536].decode("utf-8", "replace").splitlines():
                    match = _STATUS.search(line)
                    if match:
                        return match.group(0), _text(line)
    return "", ""


def _failures(
    temporary: frozenset[bytes],
    permanent: frozenset[bytes],
    details: dict[str, tuple[str, str]],
    message: Message,
) -> tuple[Failure, ...]:
    failures: dict[str, Failure] = {}
    for raw_address, hard in [(a, False) for a in temporary] + [(a, True) for a in permanent]:
        address = normal_address(raw_address.decode("ascii", "replace"))
        if not address or len(failures) >= MAX_RECIPIENTS:
            continue
        status, diagnostic = details.get(address, ("", ""))
        if not status:
            status, diagnostic = _body_status(message)
        if status.startswith("4"):
            hard = False
        failures[address] = Failure(
            address=address, permanent=hard, status=status, diagnostic=diagnostic
        )
    return tuple(failures.values())


def _reporting_mta(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            blocks = part.get_payload()
            if isinstance(blocks, list) and blocks and isinstance(blocks[0], Message):
                _, _, name = str(blocks[0].get("Reporting-MTA", "")).partition(";")
                if _HOST.fullmatch(name.strip()):
                    return name.strip().lower()
    _, sender = parseaddr(str(message.get("From", "")))
    domain = sender.rpartition("@")[2]
    return domain.lower() if _HOST.fullmatch(domain) else "an unnamed server"


def _date(message: Message) -> datetime | None:
    try:
        dated = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    return dated.astimezone(UTC) if dated.tzinfo is not None else None


def _dsn_id(message: Message, raw: bytes) -> str:
    message_id = str(message.get("Message-ID", "")).strip()
    return hashlib.sha256(message_id.encode() if message_id else raw).hexdigest()
