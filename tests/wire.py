"""Checks on the raw bytes of a message, as a mail server receives them.

Python's parser forgives: it decodes an encoded word in `List-Unsubscribe` and hides that
the header is unreadable to mail clients. These checks read the bytes themselves.
"""

from __future__ import annotations

import base64
import quopri
import re
import unicodedata
from email import message_from_bytes, policy
from email.header import decode_header, make_header

#: The headers every notification carries, once each, and nothing else.
HEADERS = {
    "to",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "from",
    "subject",
    "date",
    "in-reply-to",
    "references",
    "auto-submitted",
    "list-id",
    "mime-version",
    "content-type",
}
#: Headers a notification carries when it knows their value (once at most).
OPTIONAL = {"content-language"}
#: Structured headers: their values are never RFC 2047 encoded words.
STRUCTURED = HEADERS - {"subject", "to", "from"}


def split_message(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """(header name, unfolded value) pairs in order, and the body."""
    assert b"\r\n\r\n" in raw, "no end of the header block"
    head, body = raw.split(b"\r\n\r\n", 1)
    headers: list[tuple[str, str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if line[:1] in (" ", "\t"):
            assert headers, "a continuation line before any header"
            name, value = headers[-1]
            headers[-1] = (name, value + line)
        else:
            name, colon, value = line.partition(":")
            assert colon, f"not a header line: {line!r}"
            assert re.fullmatch(r"[!-9;-~]+", name), f"not a header name: {line!r}"
            headers.append((name.lower(), value.strip()))
    return headers, body


def assert_clean_wire(raw: bytes, *, recipient: str) -> dict[str, str]:
    """Assert what any message we send must be on the wire; return its headers by name."""
    # 7-bit, CRLF only, no NUL: every byte survives any relay unchanged.
    assert raw.isascii(), "8-bit bytes on the wire"
    assert b"\x00" not in raw
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR"
    headers, _ = split_message(raw)
    names = [name for name, _ in headers]
    required = [name for name in names if name not in OPTIONAL]
    assert sorted(required) == sorted(HEADERS), f"headers added or missing: {names}"
    assert all(names.count(name) <= 1 for name in OPTIONAL), f"a header twice: {names}"
    values = dict(headers)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n"):
        limit = 998 if line.lower().startswith("list-unsubscribe:") else 78
        assert len(line) <= limit, f"header line of {len(line)} characters: {line!r}"
    for name in STRUCTURED:
        assert "=?" not in values[name], f"{name} carries an encoded word: {values[name]!r}"
    for name in ("subject", "to", "from"):
        decoded = str(make_header(decode_header(values[name])))
        bad = [c for c in decoded if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
        assert not bad, f"{name} decodes to control characters {bad!r}: {decoded!r}"
    to = values["to"]
    assert to.endswith(f"<{recipient}>") or to == recipient, to
    # Both of Python's policies read the same single message without a defect.
    for each in (policy.compat32, policy.default, policy.SMTP):
        parsed = message_from_bytes(raw, policy=each)
        assert not parsed.defects, parsed.defects
        parts = [p for p in parsed.walk() if not p.is_multipart()]
        assert 2 <= len(parts) <= 3
        for part in parts:
            assert not part.defects, part.defects
    assert_body_lines(raw)
    return values


def assert_body_lines(raw: bytes) -> None:
    """Quoted-printable and base64 lines stay within RFC 2045's 76 characters."""
    parsed = message_from_bytes(raw, policy=policy.compat32)
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=False)
        assert isinstance(payload, str)
        for line in payload.split("\r\n"):
            assert len(line) <= 76, f"a {len(line)}-character body line: {line!r}"
        encoding = part["Content-Transfer-Encoding"]
        if encoding == "quoted-printable":
            quopri.decodestring(payload.encode())
        elif encoding == "base64":
            base64.b64decode(payload.encode(), validate=False)


def decoded_parts(raw: bytes) -> dict[str, str]:
    """The text of each leaf part by content type."""
    parsed = message_from_bytes(raw, policy=policy.default)
    found: dict[str, str] = {}
    for part in parsed.walk():
        if not part.is_multipart():
            found[part.get_content_type()] = part.get_content()  # type: ignore[attr-defined]
    return found


def ics_lines(ics: str) -> list[str]:
    """Unfolded content lines of an iCalendar text, after checking its folding (RFC 5545)."""
    raw = ics.encode()
    assert b"\n" not in raw.replace(b"\r\n", b""), "an .ics line ends without CR"
    physical = raw.split(b"\r\n")
    for line in physical:
        assert len(line) <= 75, f"an .ics line of {len(line)} octets: {line!r}"
    unfolded: list[str] = []
    for line in raw.decode().split("\r\n"):
        if line.startswith(" ") and unfolded:
            unfolded[-1] += line[1:]
        elif line:
            unfolded.append(line)
    return unfolded


#: Run by another Python (3.13: stricter header checks) on raw messages given as files.
_OTHER_PYTHON_CHECK = r"""
import sys
from email import message_from_bytes, policy

strict = policy.SMTP
if hasattr(policy.SMTP, "verify_generated_headers"):  # 3.13: refuses injected headers
    strict = policy.SMTP.clone(verify_generated_headers=True)
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    for each in (policy.compat32, policy.default, strict):
        parsed = message_from_bytes(raw, policy=each)
        assert not parsed.defects, (path, parsed.defects)
        for part in parsed.walk():
            assert not part.defects, (path, part.defects)
        parsed.as_bytes(policy=strict)  # regenerating must not find an injection
    names = sorted(k.lower() for k in message_from_bytes(raw, policy=policy.default).keys())
    print(path, ",".join(names))
"""


def other_python() -> str | None:
    """The newest Python other than this one found on the machine (3.13 or later)."""
    import glob
    import os
    import shutil
    import subprocess

    candidates = [shutil.which(name) for name in ("python3.14", "python3.13")]
    # pyenv keeps versions it has not activated here, behind shims that refuse to run them.
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{root}/versions/3.1[3-9]*/bin/python3"), reverse=True)
    for found in candidates:
        if not found:
            continue
        check = "import sys; assert sys.version_info >= (3, 13)"
        ran = subprocess.run([found, "-c", check], capture_output=True, check=False)
        if ran.returncode == 0:
            return found
    return None


def assert_parses_on(python: str, raws: list[bytes], folder: object) -> list[str]:
    """Have `python` parse each raw message under its email policies; the header names."""
    import subprocess
    from pathlib import Path

    paths = []
    for number, raw in enumerate(raws):
        path = Path(str(folder)) / f"message-{number}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    ran = subprocess.run(
        [python, "-c", _OTHER_PYTHON_CHECK, *paths], capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    return [line.split(" ", 1)[1] for line in ran.stdout.splitlines()]
