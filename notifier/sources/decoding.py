"""Bytes of an iCalendar feed to text, the way its author meant them.

Real feeds are not all UTF-8 with CRLF: Outlook writes Windows-1252, old exporters put a
``CHARSET`` parameter on the property, servers declare a charset in ``Content-Type``, some
files start with a byte order mark, some end lines with a bare CR, and folding at 75 octets
often splits a multi-byte UTF-8 character across two physical lines. This module reads all
of that into unfolded text with CRLF line ends, noting what it had to guess. Pure: no I/O.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

#: Byte order marks and the encodings they announce (longest first: UTF-32 LE starts
#: with the UTF-16 LE mark).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_LINE_END = re.compile(rb"\r\n|\n|\r")
_TEXT_LINE_END = re.compile(r"\r\n|\n|\r")
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)\"?", re.IGNORECASE)
_UTF8 = {"utf-8", "utf8"}


@dataclass(kw_only=True)
class Decoded:
    """The feed as text (unfolded, CRLF line ends) and notes on what had to be guessed."""

    text: str
    notes: list[str] = field(default_factory=list)


def charset_of(content_type: str | None) -> str | None:
    """The charset an HTTP ``Content-Type`` names, if any (lower case)."""
    if not content_type:
        return None
    found = _CHARSET.search(content_type)
    return found.group(1).lower() if found else None


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _unfold(lines: list[bytes]) -> list[bytes]:
    """Join folded lines (RFC 5545 3.1) before any decoding, so split characters rejoin."""
    logical: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1] += line[1:]
        elif line:
            logical.append(line)
    return logical


def _value_start(line: bytes) -> int:
    """Index of the colon that ends the name and parameters (outside quotes), or -1."""
    quoted = False
    for index, byte in enumerate(line):
        if byte == 0x22:  # "
            quoted = not quoted
        elif byte == 0x3A and not quoted:  # :
            return index
    return -1


def _property_charset(head: bytes) -> str | None:
    """The CHARSET parameter of a property's name-and-parameters part."""
    if b";" not in head:
        return None
    for parameter in head.split(b";")[1:]:
        name, _, value = parameter.partition(b"=")
        if name.strip().upper() == b"CHARSET":
            return value.strip(b'" ').decode("ascii", "replace").lower()
    return None


def decode_ics(body: bytes, *, content_type: str | None = None) -> Decoded:
    """Decode an iCalendar body: BOM first, then a property's CHARSET, then the HTTP charset,
    then UTF-8; a line that is not valid UTF-8 is read as Windows-1252 (with a note).

    Lines may end in CRLF, LF or a bare CR; folded lines are joined on the raw bytes.
    """
    notes: list[str] = []
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            if encoding != "utf-8":
                # A UTF-16/32 document: decode whole, then unfold the text.
                text = body[len(bom) :].decode(encoding, errors="replace")
                if "\ufffd" in text:
                    notes.append(f"the body is not valid {encoding}; unreadable bytes replaced")
                raw_lines = _TEXT_LINE_END.split(text)
                joined: list[str] = []
                for raw in raw_lines:
                    if raw[:1] in (" ", "\t") and joined:
                        joined[-1] += raw[1:]
                    elif raw:
                        joined.append(raw)
                return Decoded(text="\r\n".join(joined) + "\r\n", notes=notes)
            body = body[len(bom) :]
            break
    declared = charset_of(content_type)
    default = _codec(declared)
    if declared and default is None:
        notes.append(f"unknown charset {declared!r} in Content-Type; read as UTF-8")
    if default in _UTF8:
        default = None
    if b"\r" in body and b"\n" not in body:
        notes.append("lines end in a bare CR (classic Mac OS); read as line ends")
    fallback_lines = 0
    out: list[str] = []
    for line in _unfold(_LINE_END.split(body)):
        colon = _value_start(line)
        head, value = (line[:colon], line[colon:]) if colon >= 0 else (line, b"")
        named = _property_charset(head) if colon > 0 else None
        codec = _codec(named) or default
        if named and _codec(named) is None:
            name = head.split(b";")[0].decode("ascii", "replace")
            notes.append(f"unknown CHARSET {named!r} on {name}; read as UTF-8")
        if codec is not None and codec not in _UTF8:
            out.append(head.decode("ascii", "replace") + value.decode(codec, errors="replace"))
            continue
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            fallback_lines += 1
            out.append(line.decode("cp1252", errors="_notifier_cp1252"))
    if fallback_lines:
        notes.append(
            f"{fallback_lines} line{'s' if fallback_lines != 1 else ''} not valid UTF-8; "
            "read as Windows-1252"
        )
    return Decoded(text="\r\n".join(out) + "\r\n", notes=notes)


def _cp1252_gaps(error: UnicodeError) -> tuple[str, int]:
    """The five bytes Windows-1252 leaves undefined read as their Latin-1 code points
    (C1 controls, which text cleaning then removes) rather than U+FFFD."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return bytes(chunk).decode("latin-1"), error.end


codecs.register_error("_notifier_cp1252", _cp1252_gaps)
