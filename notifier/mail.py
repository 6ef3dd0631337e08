"""The bytes of an email, written by hand so that every line is what its RFC says.

Python's `email` package is a forgiving builder: it turns a long `List-Unsubscribe` value
into an RFC 2047 encoded word (which no mail client reads as a link), lets quoted-printable
lines run to 78 characters and decodes encoded words it is handed inside header values.
Here every header is written from its grammar:

- unstructured text (`Subject`, display names) is cleaned of control characters and
  written either as plain folded ASCII or, when it holds anything else (non-ASCII, or
  something that looks like an encoded word), entirely as UTF-8 ``B`` encoded words of at
  most 75 characters, so what a client decodes is exactly the cleaned text;
- addresses, message ids and URIs are checked against their grammar and written in angle
  brackets, never encoded, never folded inside;
- bodies are quoted-printable with lines of at most 76 characters (RFC 2045), or base64 in
  lines of 76.

Anything that cannot be written safely raises `MessageBuildError`, a permanent delivery
failure: a message that cannot be built today cannot be built tomorrow either.

`prepare_email` assembles a notice's email once for every reader who reads it alike (what
`notifier.rendering` rendered, the calendar part, the thread and list headers), and
`PreparedEmail.for_recipient` writes each reader's copy: their address, Message-ID and
links in place of the placeholders.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime as format_datetime_rfc
from email.utils import parseaddr
from typing import TYPE_CHECKING

from notifier.calendar import ATTENDEE_PLACEHOLDER, attendee_lines
from notifier.domain.errors import PermanentDeliveryError
from notifier.domain.text import ENCODED_WORD, clean_text

if TYPE_CHECKING:
    from notifier.domain.models import Meeting
    from notifier.rendering import RenderedEmail

#: RFC 5322 recommends header lines of at most 78 characters (998 is the hard limit).
LINE = 78
CRLF = b"\r\n"

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
#: URI characters of RFC 3986, which never include space, quotes, angle brackets or CTLs.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
#: Characters that can stand in a display name without quoting (RFC 5322 atext and space).
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")


class MessageBuildError(PermanentDeliveryError):
    """The message cannot be written safely (an address or link breaks its grammar)."""


def check_address(address: str) -> str:
    """An ASCII addr-spec ``local@domain``, IDN domains in their ``xn--`` form."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise MessageBuildError(f"not an email address: {address!r}")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise MessageBuildError(f"invalid domain in {address!r}") from None
    if not _DOT_ATOM.fullmatch(local):
        raise MessageBuildError(
            f"cannot send to {address!r}: the part before @ must be plain ASCII (no SMTPUTF8)"
        )
    if not _DOMAIN.fullmatch(domain) or len(local) > 64 or len(domain) > 253:
        raise MessageBuildError(f"invalid domain in {address!r}")
    return f"{local}@{domain}"


def msg_id(left: str, domain: str) -> str:
    """``<left@domain>`` for Message-ID, In-Reply-To and References (RFC 5322 msg-id)."""
    if not _DOT_ATOM.fullmatch(left) or not _DOMAIN.fullmatch(domain):
        raise MessageBuildError(f"cannot form a message id from {left!r} and {domain!r}")
    return f"<{left}@{domain}>"


def angle_uri(uri: str) -> str:
    """``<uri>`` for List-Unsubscribe (RFC 2369): a URI of RFC 3986 characters only."""
    if not _URI.fullmatch(uri) or len(uri) > 900:
        raise MessageBuildError(f"cannot put {uri!r} in a header: not a plain URI")
    return f"<{uri}>"


def _encoded_words(text: str, first_room: int) -> list[str]:
    """`text` as UTF-8 B encoded words, the first fitting in `first_room` characters."""
    words: list[str] = []
    room = min(first_room, 75)  # RFC 2047: an encoded word is at most 75 characters
    chunk = ""
    for char in text:
        candidate = chunk + char
        # 12 characters of =?utf-8?b?...?= around ceil(n/3)*4 of base64.
        if chunk and 12 + -(-len(candidate.encode()) // 3) * 4 > room:
            words.append(chunk)
            chunk = char
            room = 75
        else:
            chunk = candidate
    if chunk:
        words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words]


def _needs_encoding(text: str) -> bool:
    return (
        not text.isascii()
        or not text.isprintable()
        or "=?" in text
        or any(len(word) > LINE - 2 for word in text.split(" "))
    )


def _fold(name: str, tokens: Iterable[str]) -> bytes:
    """``Name: tok tok`` folded between tokens so no line passes `LINE` characters."""
    lines = [f"{name}:"]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > LINE and lines[-1] != f"{name}:":
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    return "\r\n".join(lines).encode("ascii") + CRLF


def unstructured(name: str, text: str) -> bytes:
    """An unstructured header (``Subject``) carrying exactly `text`, cleaned to one line."""
    text = clean_text(text)
    if not text:
        return f"{name}: ".encode("ascii") + CRLF
    if not _needs_encoding(text):
        return _fold(name, text.split(" "))
    return _fold(name, _encoded_words(text, LINE - len(name) - 2))


def _phrase(name: str, room: int) -> list[str]:
    name = clean_text(name)
    if _needs_encoding(name) or ENCODED_WORD.search(name):
        return _encoded_words(name, room)
    if _PLAIN_PHRASE.fullmatch(name):
        return name.split(" ")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    if len(quoted) + 2 > room:  # a quoted string this long could not be folded neatly
        return _encoded_words(name, room)
    return [f'"{quoted}"']


def mailbox(name: str, address: str, header: str) -> bytes:
    """``From``/``To``: ``display name <local@domain>``, the name quoted or encoded."""
    addr = f"<{check_address(address)}>"
    if not clean_text(name):
        return _fold(header, [check_address(address)])
    return _fold(header, [*_phrase(name, LINE - len(header) - 2), addr])


def plain(name: str, value: str) -> bytes:
    """A structured header whose value the caller built from checked parts (no folding)."""
    line = f"{name}: {value}"
    if not line.isascii() or not line.isprintable() or len(line) > 998:
        raise MessageBuildError(f"cannot write header {name}")
    return line.encode("ascii") + CRLF


# -- bodies ----------------------------------------------------------------------------------

#: How each byte is written in quoted-printable: itself when printable (not "="), else =XX.
_QP = [f"={b:02X}" if not (33 <= b <= 126) or b == 61 else chr(b) for b in range(256)]
_QP[32] = " "
_QP[9] = "\t"
#: Soft line breaks keep every line within RFC 2045's 76 characters, the "=" included.
QP_LINE = 76


def qp_line(line: str) -> bytes:
    """One logical line (no line break) in quoted-printable, soft-broken at 76 characters."""
    tokens = [_QP[b] for b in line.encode()]
    if tokens and tokens[-1] in (" ", "\t"):  # trailing white space would be lost in transit
        tokens[-1] = f"={ord(tokens[-1]):02X}"
    if line.startswith(("From ", ".")):  # mbox "From " mangling; a lone "." ends DATA
        tokens[0] = f"={ord(line[0]):02X}"
    out: list[str] = []
    current = ""
    for token in tokens:
        if len(current) + len(token) > QP_LINE - 1:
            out.append(current + "=")
            current = token
        else:
            current += token
    out.append(current)
    return "\r\n".join(out).encode("ascii")


def quoted_printable(text: str) -> bytes:
    """`text` (LF or CRLF line breaks) in quoted-printable with CRLF line breaks."""
    return CRLF.join(qp_line(line) for line in text.replace("\r\n", "\n").split("\n"))


def base64_lines(data: bytes) -> bytes:
    """`data` in base64, 76 characters a line, CRLF line breaks (RFC 2045)."""
    return base64.encodebytes(data).replace(b"\n", CRLF)


# -- A notice's email: the part every reader shares, then each reader's copy ----------------

#: Stands in for the reader's unsubscribe link while a shared email body is built.
UNSUBSCRIBE_PLACEHOLDER = "notifier_unsubscribe_link_placeholder"
#: Stands in for the reader's private calendar link likewise.
CALENDAR_PLACEHOLDER = "notifier_calendar_link_placeholder"
#: Stands in for a self-service reader's manage link; its line is left out for others.
MANAGE_PLACEHOLDER = "notifier_manage_link_placeholder"
_PLACEHOLDERS = (UNSUBSCRIBE_PLACEHOLDER, CALENDAR_PLACEHOLDER, MANAGE_PLACEHOLDER)


@dataclass(frozen=True, kw_only=True)
class _LinkLine:
    """A body line holding the reader's own links, encoded per reader."""

    line: str
    html: bool


@dataclass(frozen=True, kw_only=True)
class _Invitation:
    """The calendar part, which names its reader as ATTENDEE (iTIP, RFC 5546)."""

    ics: bytes


_Piece = bytes | _LinkLine | _Invitation


@dataclass(frozen=True, kw_only=True)
class PreparedEmail:
    """An email built once for everyone who reads it the same way (kind, locale, zone).

    `head` is every shared header, `pieces` the MIME body with holes where the reader's
    own unsubscribe link and calendar attendee go; `for_recipient` adds the headers that
    differ per reader and fills the holes, so rendering and encoding (the CPU-bound part)
    happen once per group instead of once per recipient.
    """

    head: bytes
    pieces: tuple[_Piece, ...]
    domain: str

    def for_recipient(
        self,
        *,
        to: str,
        name: str = "",
        delivery_id: str,
        unsubscribe_url: str,
        calendar_url: str = "",
        manage_url: str = "",
    ) -> bytes:
        """The complete message for one recipient, ready for SMTP DATA.

        Raises `MessageBuildError` (a permanent failure) when the address or the link
        cannot be written safely.
        """
        out = [
            mailbox(name, to, "To"),
            plain("Message-ID", msg_id(delivery_id, self.domain)),
            plain("List-Unsubscribe", angle_uri(unsubscribe_url)),
            plain("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            self.head,
            CRLF,
        ]
        for piece in self.pieces:
            if isinstance(piece, bytes):
                out.append(piece)
            elif isinstance(piece, _LinkLine):
                line = piece.line
                if MANAGE_PLACEHOLDER in line and not manage_url:
                    continue  # a reader the operator manages has no manage page
                for holder, url in (
                    (UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
                    (CALENDAR_PLACEHOLDER, calendar_url),
                    (MANAGE_PLACEHOLDER, manage_url),
                ):
                    line = line.replace(holder, html.escape(url) if piece.html else url)
                out.append(qp_line(line))
            else:
                attendee = attendee_lines(check_address(to), name)
                out.append(base64_lines(piece.ics.replace(ATTENDEE_PLACEHOLDER, attendee)))
        return b"".join(out)


def _qp_pieces(text: str, *, is_html: bool) -> list[_Piece]:
    """`text` in quoted-printable, with the lines holding the link left as holes."""
    pieces: list[_Piece] = []
    lines = text.replace("\r\n", "\n").split("\n")
    for number, line in enumerate(lines):
        if any(holder in line for holder in _PLACEHOLDERS):
            pieces.append(_LinkLine(line=line, html=is_html))
        else:
            pieces.append(qp_line(line))
        if number < len(lines) - 1:
            pieces.append(CRLF)
    return pieces


def sender_domain(sender: str) -> str:
    """The domain of the sender address, for Message-IDs and the iCalendar UID."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2].lower() or "localhost"


def list_id(meeting_id: str, domain: str) -> str:
    """The RFC 2919 ``List-Id`` of a meeting's notifications: one list per meeting, so a
    reader can filter them, and a List-Unsubscribe is never without its list."""
    left = thread_id(meeting_id, domain)[1:].partition("@")[0]
    return f"<{left}.{domain}>"


def thread_id(meeting_id: str, domain: str) -> str:
    """The Message-ID every email about a meeting refers to, so mail clients thread them.

    Slugs may hold ``..`` or end in a dot, which a message id may not: those meetings are
    named by a digest of their id instead.
    """
    left = f"meeting.{meeting_id}"
    if not _DOT_ATOM_ID.fullmatch(left):
        left = "meeting.x-" + hashlib.sha256(meeting_id.encode()).hexdigest()[:32]
    return msg_id(left, domain)


_DOT_ATOM_ID = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


def prepare_email(
    rendered: RenderedEmail,
    *,
    sender: str,
    meeting: Meeting,
    ics: bytes | None,
    ics_method: str,
    now: datetime,
    language: str | None = None,
) -> PreparedEmail:
    """Build the shared part of an email: headers, text, HTML and the calendar part;
    `language` (``ru``) is said as Content-Language (RFC 3282).

    Written by `notifier.mail`: headers from their grammar (text cleaned and encoded,
    addresses and ids checked), bodies in quoted-printable of at most 76 characters a line.
    """
    domain = sender_domain(sender)
    sender_name, sender_address = parseaddr(sender)
    boundary = (
        "=_notifier_"
        + hashlib.sha256(
            rendered.text.encode() + rendered.html.encode() + (ics or b"")
        ).hexdigest()[:24]
    )
    head = b"".join(
        [
            mailbox(sender_name, sender_address, "From"),
            unstructured("Subject", rendered.subject),
            plain("Date", format_datetime_rfc(now)),
            plain("In-Reply-To", thread_id(meeting.id, domain)),
            plain("References", thread_id(meeting.id, domain)),
            plain("List-Id", list_id(meeting.id, domain)),
            plain("Auto-Submitted", "auto-generated"),
            *(
                [plain("Content-Language", language)]
                if language and re.fullmatch(r"[a-z]{2,3}", language)
                else []
            ),
            plain("MIME-Version", "1.0"),
            plain("Content-Type", "multipart/alternative;"),
            f' boundary="{boundary}"\r\n'.encode(),  # folded after ";", as RFC 2045 allows
        ]
    )
    open_part = f"--{boundary}\r\n".encode()
    qp_headers = (
        "Content-Type: text/{}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    pieces: list[_Piece] = [
        open_part,
        qp_headers.format("plain").encode(),
        *_qp_pieces(rendered.text, is_html=False),
        b"\r\n" + open_part,
        qp_headers.format("html").encode(),
        *_qp_pieces(rendered.html, is_html=True),
        b"\r\n",
    ]
    if ics is not None:
        pieces += [
            open_part,
            f"Content-Type: text/calendar; charset=utf-8; method={ics_method}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode(),
            _Invitation(ics=ics),
        ]
    pieces.append(f"--{boundary}--\r\n".encode())
    merged: list[_Piece] = []
    for piece in pieces:  # join adjacent fixed bytes, so a reader's copy is a short join
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        else:
            merged.append(piece)
    return PreparedEmail(head=head, pieces=tuple(merged), domain=domain)
