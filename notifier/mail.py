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
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

from notifier.domain.errors import PermanentDeliveryError
from notifier.domain.text import ENCODED_WORD, clean_text

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
