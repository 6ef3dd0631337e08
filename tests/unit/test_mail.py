"""Header and body encoding: properties over any text, on the bytes written."""

from __future__ import annotations

import quopri
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier import mail
from notifier.domain.models import MeetingStatus
from notifier.domain.text import clean_text, decode_encoded_words, text_problem
from notifier.sources.feed import FeedItem, clean_item

NASTY = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["\r", "\n", "\x00", "\x85", "\u2028", "\u2029", "=?", "?=", "?Q?", " "]),
        st.just("=?utf-8?q?=0D=0ABcc:_x?="),
    ),
    max_size=40,
).map("".join)


def _lines(header: bytes) -> list[str]:
    assert header.endswith(b"\r\n")
    text = header[:-2].decode("ascii")
    lines = text.split("\r\n")
    for line in lines[1:]:
        assert line.startswith(" "), f"a folded line must start with white space: {line!r}"
    return lines


@settings(max_examples=300)
@given(NASTY)
def test_a_subject_is_one_header_whatever_the_text(text: str) -> None:
    header = mail.unstructured("Subject", text)
    lines = _lines(header)
    assert all(len(line) <= 78 for line in lines)
    for word in " ".join(lines).split():
        if word.startswith("=?"):
            assert len(word) <= 75
    value = " ".join(line.strip() for line in lines)[len("Subject:") :].strip()
    decoded = str(make_header(decode_header(value))) if value else ""
    assert decoded.replace(" ", "") == clean_text(text).replace(" ", "")
    assert text_problem(decoded.replace("=\u2060?", "")) is None or "=?" in text


@settings(max_examples=300)
@given(NASTY)
def test_a_display_name_never_adds_an_address_or_a_header(name: str) -> None:
    header = mail.mailbox(name, "desk@example.org", "To")
    lines = _lines(header)
    assert all(len(line) <= 78 for line in lines)
    assert lines[-1].endswith("desk@example.org>") or lines[-1].endswith("desk@example.org")
    flat = " ".join(lines)
    assert flat.count("<") == flat.count(">") or '"' in flat


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_quoted_printable_lines_stay_within_76_and_decode_back(line: str) -> None:
    line = line.replace("\r", "").replace("\n", "")
    encoded = mail.qp_line(line)
    assert encoded.isascii()
    assert all(len(part) <= 76 for part in encoded.split(b"\r\n"))
    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode() == line


@pytest.mark.parametrize(
    "address",
    ["josé@example.org", "a b@example.org", "a@exa mple.org", "<a>@example.org", "a@b@\r\nc"],
)
def test_an_address_that_cannot_be_written_is_a_permanent_error(address: str) -> None:
    with pytest.raises(mail.MessageBuildError):
        mail.check_address(address)


def test_idn_domains_are_written_in_their_ascii_form() -> None:
    assert mail.check_address("desk@пример.рф") == "desk@xn--e1afmkfd.xn--p1ai"


@pytest.mark.parametrize(
    "uri", ["http://x/a b", "http://x/<a>", "http://x/\r\nBcc: y", "javascript:alert(1)\n"]
)
def test_a_link_that_is_not_a_plain_uri_never_reaches_a_header(uri: str) -> None:
    with pytest.raises(mail.MessageBuildError):
        mail.angle_uri(uri)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\r\nBcc: x", "U+000D"),
        ("a\nb", "U+000A"),
        ("nul\x00", "U+0000"),
        ("tab\there", "U+0009"),
        ("next\x85line", "U+0085"),
        ("line\u2028sep", "U+2028"),
        ("para\u2029sep", "U+2029"),
        ("\u202eevil", "U+202E"),
        ("=?UTF-8?Q?=0D=0ABcc:_x?=", "encoded word"),
        ("=?utf-8?b?DQpCY2M6IHg=?=", "encoded word"),
    ],
)
def test_operator_text_with_a_line_break_or_encoded_word_is_refused(
    text: str, problem: str
) -> None:
    found = text_problem(text)
    assert found is not None
    assert problem in found


def test_ordinary_text_in_any_script_is_accepted() -> None:
    for text in ("Переговоры президентов", "会談", "Talks = 2?", "a=?b", "emoji 🎉"):
        assert text_problem(text) is None
    assert text_problem("two\nparagraphs\tand a tab", multiline=True) is None


def test_encoded_words_are_decoded_then_cleaned_even_when_nested() -> None:
    inner = "=?utf-8?q?=0D=0ABcc:_x@evil?="
    import base64

    outer = "=?utf-8?b?" + base64.b64encode(inner.encode()).decode() + "?="
    assert decode_encoded_words(outer) == "\r\nBcc: x@evil"
    cleaned = clean_text("Title " + outer)
    assert text_problem(cleaned) is None
    assert "\r" not in cleaned
    assert "\n" not in cleaned


def test_a_feed_item_is_cleaned_and_the_cleaning_is_reported() -> None:
    item = FeedItem(
        uid="u1",
        title="Talks\r\nBcc: x@evil.example",
        starts_at=datetime(2026, 3, 2, 16, tzinfo=UTC),
        status=MeetingStatus.SCHEDULED,
        timezone="UTC",
        location="Moscow\u2028X: y",
        reason="=?UTF-8?Q?ok=0D=0AX-Evil:_1?=",
        description="line one\r\nline two\x00",
    )
    safe, warning = clean_item(item)
    assert safe.title == "Talks Bcc: x@evil.example"
    assert safe.location == "Moscow X: y"
    assert safe.reason == "ok X-Evil: 1"
    assert safe.description == "line one\nline two"
    assert warning is not None
    for name in ("title", "location", "reason"):
        assert name in warning
    unchanged, none = clean_item(safe)
    assert none is None
    assert unchanged == safe


def test_an_encoded_word_naming_a_charset_with_a_nul_is_read_not_a_crash() -> None:
    """Found by hypothesis: ``codecs.lookup`` raises ValueError, not LookupError, for a
    name with a NUL in it."""
    from notifier.domain.text import decode_encoded_words

    assert decode_encoded_words("=?utf\x00-8?q?abc?=") == "abc"
