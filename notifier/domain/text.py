"""Which text may reach a message header or a one-line field, and how feed text is cleaned.

Text from operators (config file, API, CLI) is *checked*: a control character or an
RFC 2047 encoded word in a one-line field is refused with an error naming the field, so
nobody learns at send time that their title was unusable. Text from third parties (ICS and
JSON feeds) is *cleaned*: encoded words are decoded to what they say and every control
character becomes a space, and the caller logs that it did so. Whatever got through is
still encoded safely when a message is built (`notifier.mail`), so these checks are the
first line, not the only one.
"""

from __future__ import annotations

import re
import unicodedata
from email.header import decode_header

#: An RFC 2047 encoded word, ``=?charset?B|Q?text?=`` (RFC 2231 language tag allowed).
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")

#: Bidirectional embeddings, overrides and isolates: they make a subject read differently
#: from what it says (U+202E turns "exe.txt" around), and no meeting title needs them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character of `text` that may not stand in a one-line field, or None.

    Refused: every control character (C0 including TAB, DEL, C1 including U+0085 NEXT LINE),
    the line and paragraph separators U+2028 and U+2029, and bidirectional overrides. With
    `multiline`, LF, CR and TAB are allowed (a description has paragraphs).
    """
    for char in text:
        if multiline and char in "\n\r\t":
            continue
        category = unicodedata.category(char)
        if category == "Cc" or category in ("Zl", "Zp") or char in _BIDI:
            return char
    return None


def describe_character(char: str) -> str:
    """``U+000A (LINE FEED)``: how an error names a refused character."""
    name = unicodedata.name(char, "") or {
        "\n": "LINE FEED",
        "\r": "CARRIAGE RETURN",
        "\t": "TAB",
        "\x00": "NUL",
        "\x85": "NEXT LINE",
    }.get(char, "control character")
    return f"U+{ord(char):04X} ({name})"


def text_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` may not be accepted from an operator, or None when it may.

    One-line fields (titles, reasons, locations, names, participants, conditions, tags)
    reach email subjects and calendar lines: they may hold no control character and no
    RFC 2047 encoded word, which a mail client would decode into one. A multi-line field
    (a description) may hold line breaks and tabs, nothing else of the kind.
    """
    bad = unsafe_character(text, multiline=multiline)
    if bad is not None:
        where = "one-line text" if not multiline else "text"
        return f"{where} may not contain {describe_character(bad)}"
    if not multiline and ENCODED_WORD.search(text):
        return (
            "looks like an RFC 2047 encoded word (=?charset?Q?...?=): write the text itself; "
            "notifier encodes it for mail"
        )
    return None


def check_text(text: str, *, field: str, multiline: bool = False) -> str:
    """Return `text` when `text_problem` finds nothing, else raise `ValueError` naming `field`."""
    problem = text_problem(text, multiline=multiline)
    if problem is not None:
        raise ValueError(f"{field}: {problem}" if field else problem)
    return text


def decode_encoded_words(text: str) -> str:
    """`text` with every RFC 2047 encoded word replaced by what it decodes to."""

    def one(match: re.Match[str]) -> str:
        try:
            ((payload, charset),) = decode_header(match.group(0))
        except (ValueError, LookupError, UnicodeError):
            return " "
        if isinstance(payload, str):
            return payload
        raw = bytes(payload)
        try:
            return raw.decode(charset or "ascii", errors="replace")
        except (LookupError, ValueError):  # an unknown charset name, or one with a NUL in it
            return raw.decode("utf-8", errors="replace")

    # A mail client decodes again what a first decoding produced; so do we, a few times.
    for _ in range(3):
        decoded = ENCODED_WORD.sub(one, text)
        if decoded == text:
            break
        text = decoded
    return text


def clean_text(text: str, *, multiline: bool = False) -> str:
    """`text` made safe for its field: encoded words decoded, control characters spaced.

    For a one-line field every refused character (see `unsafe_character`) and every run
    of white space becomes one space; a multi-line field keeps its line breaks (as LF) and
    tabs. The result passes `text_problem` unless an encoded word decodes to another
    (which is then left as literal text: it is encoded again when a message is built).
    """
    if not multiline:
        text = decode_encoded_words(text)
    out = []
    for char in text.replace("\r\n", "\n"):
        if multiline and char in "\n\t":
            out.append(char)
        elif multiline and char == "\r":
            out.append("\n")
        elif unsafe_character(char) is not None:
            out.append(" ")
        else:
            out.append(char)
    cleaned = "".join(out)
    if multiline:
        return cleaned.strip()
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    # What survived decoding may look like an encoded word again: break its opening "=?".
    return ENCODED_WORD.sub(lambda m: "=\u2060" + m.group(0)[1:], cleaned)
