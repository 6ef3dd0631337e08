"""Every message says its status once (issue 25): no "Postponed (postponed)", no "Cleared:
cleared", and in Russian postponed and rescheduled read differently.

Each kind of status change, in each shipped locale, is rendered (email subject and text,
chat) with a reason that only repeats the status, as a feed or an operator often writes it;
the status's name, in the reader's language, must stand in the message once."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from notifier.domain.models import MeetingStatus
from notifier.rendering import Renderer, sample_notices
from notifier.words import LOCALES, STATUS, beyond

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_every_locale_names_every_status_and_no_two_alike() -> None:
    for locale in LOCALES:
        assert set(STATUS[locale]) == set(MeetingStatus)
        names = [name.casefold() for name in STATUS[locale].values()]
        assert len(set(names)) == len(names), locale
    assert STATUS["ru"][MeetingStatus.POSTPONED] == "Отложена"
    assert STATUS["ru"][MeetingStatus.RESCHEDULED].startswith("Перенесена")


@pytest.mark.parametrize(
    ("reason", "status", "shown"),
    [
        ("postponed", MeetingStatus.POSTPONED, ""),
        ("Postponed.", MeetingStatus.POSTPONED, ""),
        ("postponed; a new date will be announced", "postponed", "a new date will be announced"),
        ("отложена", MeetingStatus.POSTPONED, ""),
        ("medical reasons", MeetingStatus.POSTPONED, "medical reasons"),
        ("in progress", MeetingStatus.IN_PROGRESS, ""),
        ("cleared: the assessment was negative", "cleared", "the assessment was negative"),
        ("clearance came in", MeetingStatus.CLEARED, "clearance came in"),
        ("", MeetingStatus.CANCELLED, ""),
    ],
)
def test_a_reason_is_shown_only_for_what_it_adds(
    reason: str, status: MeetingStatus | str, shown: str
) -> None:
    assert beyond(reason, status) == shown


@pytest.mark.parametrize("locale", LOCALES)
def test_no_message_says_its_status_twice(locale: str) -> None:
    renderer = Renderer()
    checked = 0
    for notice in sample_notices(NOW):
        change = notice.change
        if change is None or notice.changes:
            continue
        status = MeetingStatus(change.to_status)
        echo = dataclasses.replace(change, reason=status.value)
        notice = dataclasses.replace(
            notice, change=echo, meeting=notice.meeting.replace(reason=status.value)
        )
        email = renderer.render(
            notice, locale=locale, timezone="Europe/Moscow", unsubscribe_url="https://x/u", now=NOW
        )
        chat = renderer.render_chat(
            notice, locale=locale, timezone="Europe/Moscow", page_url="", now=NOW
        )
        name = STATUS[locale][status].casefold()
        for text in (email.text, chat.markdown):
            said = len(re.findall(re.escape(name), text.casefold()))
            assert said <= 1, f"{locale} {notice.kind.value}: {name!r} {said} times in\n{text}"
            # The reason repeated the status's value: never shown in brackets after it.
            assert f"({status.value})" not in text
        checked += 1
    assert checked >= len(MeetingStatus)
