from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from notifier.calendar import build_ics
from notifier.domain.clock import Anchor
from notifier.domain.errors import ConfigError
from notifier.domain.models import EventKind, HistoryEntry, Meeting, MeetingStatus
from notifier.domain.outbox import change_payload, reminder_payload
from notifier.mail import UNSUBSCRIBE_PLACEHOLDER, prepare_email
from notifier.rendering import Notice, Renderer, one_line, sample_notices

NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
MOSCOW = ZoneInfo("Europe/Moscow")


def meeting(**overrides: object) -> Meeting:
    values: dict[str, object] = {
        "id": "talks",
        "title": "Talks",
        "timezone": "Europe/Moscow",
        "starts_at": datetime(2026, 3, 2, 21, 0, tzinfo=MOSCOW),
        "status": MeetingStatus.RESCHEDULED,
        "sequence": 4,
        "location": "Moscow",
    }
    values.update(overrides)
    return Meeting(**values)  # type: ignore[arg-type]


def rescheduled(m: Meeting) -> Notice:
    entry = HistoryEntry(
        meeting_id=m.id,
        sequence=m.sequence,
        at=NOW,
        kind=EventKind.RESCHEDULED,
        from_status=MeetingStatus.CLEARED,
        to_status=MeetingStatus.RESCHEDULED,
        reason="moved to the evening",
        previous_starts_at=datetime(2026, 3, 2, 18, 0, tzinfo=MOSCOW),
    )
    return Notice.from_payload(change_payload(m, entry))


def test_every_kind_renders_in_every_shipped_locale() -> None:
    renderer = Renderer()
    assert renderer.check(sample_notices(NOW), now=NOW) == []
    assert {n.kind for n in sample_notices(NOW)} == set(EventKind)


@pytest.mark.parametrize(
    ("locale", "zone", "expected"),
    [
        ("en", "Europe/Moscow", "from 18:00 MSK, 2 March 2026 to 21:00 MSK, 2 March 2026"),
        ("en", "America/New_York", "from 10:00 EST, 2 March 2026 to 13:00 EST, 2 March 2026"),
        ("ru", "Europe/Moscow", "с 18:00 МСК, 2 марта 2026 на 21:00 МСК, 2 марта 2026"),
        ("ru", "Asia/Tbilisi", "с 19:00 UTC+04, 2 марта 2026 на 22:00 UTC+04, 2 марта 2026"),
    ],
)
def test_times_are_shown_in_the_readers_zone_and_language(
    locale: str, zone: str, expected: str
) -> None:
    rendered = Renderer().render(rescheduled(meeting()), locale=locale, timezone=zone, now=NOW)
    assert expected in rendered.text
    assert expected.split(" 2 ")[0].split(" ", 1)[1] in rendered.html


def test_an_unknown_locale_falls_back_to_english() -> None:
    rendered = Renderer().render(rescheduled(meeting()), locale="de", timezone="UTC", now=NOW)
    assert rendered.subject.startswith("Rescheduled: Talks")


def test_html_is_escaped_and_the_subject_is_one_line() -> None:
    hostile = meeting(title="Talks <script>alert(1)</script>\r\nBcc: victim@example.org")
    rendered = Renderer().render(rescheduled(hostile), locale="en", timezone="UTC", now=NOW)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert one_line("a\r\n  b\tc") == "a b c"


def test_a_reminder_says_how_soon_in_the_readers_language() -> None:
    m = meeting(starts_at=NOW + timedelta(hours=1))
    notice = Notice.from_payload(reminder_payload(m, timedelta(hours=1), at=NOW))
    assert (
        "starts in 1 hour" in Renderer().render(notice, locale="en", timezone="UTC", now=NOW).text
    )
    assert "через час" in Renderer().render(notice, locale="ru", timezone="UTC", now=NOW).text


def test_a_templates_folder_overrides_one_kind_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "meeting.rescheduled.subject.txt").write_text(
        "MOVED {{ meeting.title|upper }} to {{ meeting.starts_at|when }}"
    )
    renderer = Renderer(tmp_path)
    moved = renderer.render(rescheduled(meeting()), locale="en", timezone="UTC", now=NOW)
    assert moved.subject == "MOVED TALKS to 18:00 UTC, 2 March 2026"
    assert "The meeting has been rescheduled" in moved.text  # shipped body kept


def test_check_reports_a_broken_template_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "body.txt").write_text("line one\n{{ meeting.title \n")
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "subject.txt").write_text("{{ no_such_name }}")
    problems = Renderer(tmp_path).check(sample_notices(NOW), now=NOW)
    broken = [p for p in problems if "/en/body.txt:2: " in p]
    assert len(broken) == 1, problems  # once, not once per kind
    assert any("no_such_name" in p and "ru" in p for p in problems), problems


def test_the_sandbox_refuses_reaching_into_python() -> None:
    renderer = Renderer()
    template = renderer.env.from_string("{{ meeting.__class__.__mro__ }}")
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        template.render(meeting=meeting())


def test_a_missing_templates_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        Renderer(tmp_path / "absent")


def test_one_build_serves_every_recipient_with_their_own_headers_and_link() -> None:
    m = meeting()
    notice = rescheduled(m)
    rendered = Renderer().render(
        notice,
        locale="ru",
        timezone="Europe/Moscow",
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        now=NOW,
    )
    ics = build_ics(m, organizer="notifier@example.org", domain="example.org", now=NOW)
    prepared = prepare_email(
        rendered,
        sender="Notifier <notifier@example.org>",
        meeting=m,
        ics=ics,
        ics_method="REQUEST",
        now=NOW,
    )
    for n in range(3):
        link = f"https://notify.example.org/unsubscribe/token-{n}.{'x' * 40}"
        raw = prepared.for_recipient(
            to=f"r{n}@example.org",
            name=f"Читатель {n}",
            delivery_id=f"msg_{n}",
            unsubscribe_url=link,
        )
        assert UNSUBSCRIBE_PLACEHOLDER.encode() not in raw
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["Message-ID"] == f"<msg_{n}@example.org>"
        assert parsed["To"] == f"Читатель {n} <r{n}@example.org>"
        assert parsed["List-Unsubscribe"].strip() == f"<{link}>"
        assert link in parsed.get_body(("plain",)).get_content()
        assert f'href="{link}"' in parsed.get_body(("html",)).get_content()
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_templated_data_cannot_add_headers() -> None:
    m = meeting(title="Talks\r\nBcc: everyone@example.org")
    rendered = Renderer().render(rescheduled(m), locale="en", timezone="UTC", now=NOW)
    prepared = prepare_email(
        rendered,
        sender="Notifier <n@example.org>",
        meeting=m,
        ics=None,
        ics_method="REQUEST",
        now=NOW,
    )
    raw = prepared.for_recipient(
        to="a@example.org",
        name="Evil\r\nBcc: x@example.org",
        delivery_id="msg_1",
        unsubscribe_url="https://x.example.org/u",
    )
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None


def test_the_calendar_part_moves_or_cancels_the_event() -> None:
    m = meeting(ends_at=datetime(2026, 3, 2, 23, 0, tzinfo=MOSCOW))
    ics = build_ics(m, organizer="n@example.org", domain="example.org", now=NOW).decode()
    for line in (
        "METHOD:REQUEST",
        "UID:talks@example.org",
        "SEQUENCE:4",
        # On the meeting's clocks, with the rules in force: a calendar keeps the local time.
        "DTSTART;TZID=Europe/Moscow:20260302T210000",
        "DTEND;TZID=Europe/Moscow:20260302T230000",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Moscow",
        "TZOFFSETTO:+0300",
        "STATUS:CONFIRMED",
        "BEGIN:VALARM",
    ):
        assert line in ics
    event = Calendar.from_ical(ics).walk("VEVENT")[0]
    assert event.decoded("dtstart").astimezone(UTC) == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    # An instant-anchored meeting is written in UTC, without a zone.
    fixed = build_ics(
        m.replace(anchor=Anchor.INSTANT), organizer="n@example.org", domain="example.org", now=NOW
    ).decode()
    assert "DTSTART:20260302T180000Z" in fixed
    assert "DTEND:20260302T200000Z" in fixed
    assert "VTIMEZONE" not in fixed
    cancelled = build_ics(
        m.replace(status=MeetingStatus.CANCELLED, sequence=5),
        organizer="n@example.org",
        domain="example.org",
        now=NOW,
    ).decode()
    assert "STATUS:CANCELLED" in cancelled
    assert "SEQUENCE:5" in cancelled
    assert "BEGIN:VALARM" not in cancelled
