"""Every message of the seed, word for word: each kind of news x each language x each
audience, as subject, plain text, HTML and chat, compared with the files in
tests/golden/ (read by eye when they were written; a change to wording shows as a diff).

The seed's story is the shipped config's meeting: postponed for medical reasons (which only
the participants may read), a health clearance, a reschedule to the evening. Each kind's
change carries the reason each audience is told. `NOTIFIER_GOLDEN=write` rewrites the files
instead of comparing (then read the diff before committing it).

Beside the files, two rules hold for every message: the status is said once (its word
appears at most once in the subject and once in the body), and a reason never repeats
the status word.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.domain.models import EventKind, HistoryEntry, Meeting, MeetingStatus, Subscriber
from notifier.domain.outbox import plan_change_deliveries, plan_reminder_deliveries
from notifier.rendering import Notice, Renderer
from notifier.settings import load_settings
from notifier.words import kind_name, status_name

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
NOW = datetime(2026, 2, 25, 9, 0, tzinfo=UTC)
ZONE = {"en": "America/New_York", "ru": "Europe/Moscow"}
PAGE = "https://news.example.org/meetings/moscow-tskhinvali-talks"
#: The seed's story: for each kind, the change and what each audience is told of its reason.
EVENING = datetime(2026, 3, 2, 21, 0, tzinfo=UTC) - timedelta(hours=3)  # 21:00 MSK
STORY: dict[EventKind, dict[str, object]] = {
    EventKind.SCHEDULED: {
        "to": "scheduled",
        "reason": "working visit arranged",
        "ru": "согласован рабочий визит",
    },
    EventKind.CONFIRMED: {"to": "confirmed", "reason": ""},
    EventKind.POSTPONED: {
        "to": "postponed",
        "reason": {
            "public": "postponed",
            "press": "postponed; a new date will be announced",
            "participants": "medical reasons",
        },
        "ru": {
            "public": "отложена",
            "press": "отложена; новая дата будет объявлена",
            "participants": "по медицинским причинам",
        },
        "conditions": {"participants": ("health clearance",)},
        "ru_conditions": {"participants": ("получение медицинского заключения",)},
    },
    EventKind.CLEARED: {
        "to": "cleared",
        "reason": {"public": "cleared", "participants": "medical clearance has been received"},
        "ru": {
            "public": "препятствия устранены",
            "participants": "медицинское заключение получено",
        },
        # What it lifted: the seed's pending condition, which only the participants read.
        "cleared": {"participants": ("health clearance",)},
        "ru_cleared": {"participants": ("получение медицинского заключения",)},
    },
    EventKind.RESCHEDULED: {
        "to": "rescheduled",
        "reason": {
            "public": "moved later in the evening",
            "participants": "moved later in the evening",
        },
        "ru": {"public": "на более поздний час", "participants": "на более поздний час"},
        "starts_at": EVENING,
    },
    EventKind.STARTED: {"to": "in_progress", "reason": ""},
    EventKind.CONCLUDED: {"to": "concluded", "reason": ""},
    EventKind.CANCELLED: {
        "to": "cancelled",
        "reason": {"public": "cancelled", "participants": "on medical advice"},
        "ru": {"public": "отменена", "participants": "по рекомендации врачей"},
    },
    EventKind.UPDATED: {
        "to": "postponed",
        "reason": {
            "public": "a delegation visited",
            "participants": "a delegation visited; a second health assessment was requested",
        },
        "ru": {
            "public": "состоялся визит делегации",
            "participants": (
                "состоялся визит делегации; запрошено повторное медицинское обследование"
            ),
        },
    },
}


def _settings():  # type: ignore[no-untyped-def]
    return load_settings(ROOT / "config" / "notifier.toml")


def seed_meeting() -> Meeting:
    (meeting,) = [m for m in _settings().meetings if m.id == "moscow-tskhinvali-talks"]
    return meeting.to_domain()


def notice_of(kind: EventKind, audience: str, locale: str = "en") -> Notice:
    """The notice a reader of `audience` and `locale` gets for the seed's change of
    `kind`, as the outbox plans it (`plan_change_deliveries`: their audience's view, in
    their language where the meeting has it)."""
    settings = _settings()
    audiences, languages = settings.audience_order, settings.language_order
    seed = seed_meeting()
    reader = Subscriber(
        id="reader",
        email="reader@example.org",
        timezone=ZONE[locale],
        locale=locale,
        audience=audience,
    )
    if kind is EventKind.REMINDER:
        meeting = seed.replace(
            status=MeetingStatus.CONFIRMED,
            reason="",
            variants={},
            texts={
                "ru": {
                    k: v for k, v in seed.texts["ru"].items() if k not in ("reason", "conditions")
                }
            },
            starts_at=NOW + timedelta(hours=1),
        )
        (delivery,) = plan_reminder_deliveries(
            meeting,
            reader,
            timedelta(hours=1),
            now=NOW,
            audiences=audiences,
            installation="inst",
            languages=languages,
        )
        return Notice.from_payload(delivery.payload)
    story = STORY[kind]
    to = MeetingStatus(str(story["to"]))
    reason = story["reason"]
    plain, variants = ("", {"reason": reason}) if isinstance(reason, dict) else (reason, {})
    starts_at = story.get("starts_at", seed.starts_at)
    conditions = story.get("conditions", {})
    meeting_variants = dict(variants)
    if conditions:
        meeting_variants["conditions"] = conditions
    ru: dict[str, object] = {
        k: v for k, v in seed.texts["ru"].items() if k not in ("reason", "conditions")
    }
    said: dict[str, object] = {}
    if story.get("ru"):
        ru["reason"] = said["reason"] = story["ru"]
    if "ru_conditions" in story:
        ru["conditions"] = story["ru_conditions"]
    if "ru_cleared" in story:
        said["cleared"] = story["ru_cleared"]
    meeting = seed.replace(
        status=to,
        reason=str(plain),
        starts_at=starts_at,
        conditions=(),
        variants=meeting_variants,
        texts={"ru": ru},
        sequence=seed.sequence + 1,
    )
    entry = HistoryEntry(
        meeting_id=seed.id,
        sequence=meeting.sequence,
        at=NOW,
        kind=kind,
        from_status=MeetingStatus.POSTPONED if kind is not EventKind.POSTPONED else None,
        to_status=to,
        reason=str(plain),
        previous_starts_at=seed.starts_at if kind is EventKind.RESCHEDULED else None,
        starts_at=starts_at,  # type: ignore[arg-type]
        variants={**variants, **({"cleared": story["cleared"]} if "cleared" in story else {})},  # type: ignore[dict-item]
        texts={"ru": said} if said else {},  # type: ignore[dict-item]
    )
    (delivery,) = plan_change_deliveries(
        meeting,
        entry,
        [reader],
        now=NOW,
        audiences=audiences,
        installation="inst",
        languages=languages,
    )
    return Notice.from_payload(delivery.payload)


def rendered(kind: EventKind, audience: str, locale: str) -> tuple[str, str, str, str]:
    """Subject, text, HTML and chat of one message, as the seed's readers get them."""
    renderer = Renderer()
    notice = notice_of(kind, audience, locale)
    email = renderer.render(
        notice,
        locale=locale,
        timezone=ZONE[locale],
        name="Reader",
        unsubscribe_url="https://news.example.org/unsubscribe/TOKEN",
        calendar_url="https://news.example.org/calendar/TOKEN.ics",
        page_url=PAGE,
        now=NOW,
    )
    chat = renderer.render_chat(
        notice, locale=locale, timezone=ZONE[locale], page_url=PAGE, now=NOW
    )
    return email.subject, email.text, email.html, chat.markdown


AUDIENCES = ("public", "press", "participants", "internal")
CASES = [
    (kind, audience, locale)
    for kind in EventKind
    for audience in AUDIENCES
    for locale in ("en", "ru")
]


def _name(kind: EventKind, audience: str, locale: str) -> str:
    return f"{kind.value.removeprefix('meeting.')}.{audience}.{locale}"


@pytest.mark.parametrize(("kind", "audience", "locale"), CASES, ids=[_name(*c) for c in CASES])
def test_every_message_matches_its_golden_file(kind: EventKind, audience: str, locale: str) -> None:
    subject, text, html, chat = rendered(kind, audience, locale)
    plain = f"Subject: {subject}\n\n{text}\n===== chat =====\n{chat}"
    name = _name(kind, audience, locale)
    if os.environ.get("NOTIFIER_GOLDEN") == "write":
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / f"{name}.txt").write_text(plain, encoding="utf-8")
        (GOLDEN / f"{name}.html").write_text(html, encoding="utf-8")
    assert plain == (GOLDEN / f"{name}.txt").read_text(encoding="utf-8")
    assert html == (GOLDEN / f"{name}.html").read_text(encoding="utf-8")


def _count(word: str, text: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", text.casefold()))


def _words_of(kind: EventKind, locale: str) -> set[str]:
    """The words that name this news: the kind's name and its status's name."""
    words = {kind_name(kind.value, locale)}
    story = STORY.get(kind)
    if story is not None and kind is not EventKind.UPDATED:
        words.add(status_name(str(story["to"]), locale))
    return words


@pytest.mark.parametrize(("kind", "audience", "locale"), CASES, ids=[_name(*c) for c in CASES])
def test_no_message_says_its_status_twice(kind: EventKind, audience: str, locale: str) -> None:
    subject, text, html, chat = rendered(kind, audience, locale)
    body = text.split("\n-- \n")[0]  # the footer says no status
    shown_html = re.sub(r"<[^>]+>", " ", html)
    for word in _words_of(kind, locale):
        assert _count(word, subject) <= 1, (word, subject)
        assert _count(word, body) <= 1, (word, body)
        assert _count(word, chat) <= 1, (word, chat)
        assert _count(word, shown_html) <= 1, (word, shown_html)


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_every_message_of_a_public_meeting_links_its_page(locale: str) -> None:
    for kind in EventKind:
        _, text, html, chat = rendered(kind, "public", locale)
        assert PAGE in text
        assert f'href="{PAGE}"' in html
        assert PAGE in chat


def test_the_participants_reason_reaches_only_the_participants() -> None:
    words = {"en": "medical reasons", "ru": "по медицинским причинам"}
    for locale, said in words.items():
        for audience in ("public", "press"):
            subject, text, html, chat = rendered(EventKind.POSTPONED, audience, locale)
            for part in (subject, text, html, chat):
                assert "medical" not in part
                assert "медицинск" not in part
        _, text, _, _ = rendered(EventKind.POSTPONED, "participants", locale)
        assert said in text


CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
LATIN_WORD = re.compile(r"\b[a-z]{3,}\b", re.IGNORECASE)


@pytest.mark.parametrize(("kind", "audience"), [(k, a) for k in EventKind for a in AUDIENCES])
def test_each_message_is_in_its_readers_language_alone(kind: EventKind, audience: str) -> None:
    """A Russian reader reads no English beyond links, zone names and the marked
    fallback; an English reader reads no Russian."""
    for locale in ("en", "ru"):
        subject, text, _html, chat = rendered(kind, audience, locale)
        body = text.split("\n-- \n")[0]
        for part in (subject, body, chat):
            shown = re.sub(r"https?://\S+|[A-Z][a-z]+/[A-Za-z_]+|UTC", " ", part)
            if locale == "en":
                assert not CYRILLIC.search(shown), (locale, shown)
            else:
                assert not LATIN_WORD.search(shown), (locale, LATIN_WORD.findall(shown))
