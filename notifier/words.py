"""The words every face uses for what a meeting's status is, one catalogue per locale:
emails, chat, the public pages, the feeds. A status has one name in each language, and no
two statuses share one ("postponed" and "rescheduled" read differently in Russian too).

`beyond` keeps a reason from saying the status again: "Postponed (postponed)" becomes
"Postponed", and "postponed; a new date will follow" is shown as "a new date will follow".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta

from notifier.domain.models import MeetingStatus

LOCALES = ("en", "ru")

STATUS: dict[str, dict[MeetingStatus, str]] = {
    "en": {
        MeetingStatus.SCHEDULED: "Scheduled",
        MeetingStatus.CONFIRMED: "Confirmed",
        MeetingStatus.POSTPONED: "Postponed",
        MeetingStatus.CLEARED: "Cleared",
        MeetingStatus.RESCHEDULED: "Rescheduled",
        MeetingStatus.IN_PROGRESS: "Under way",
        MeetingStatus.CONCLUDED: "Concluded",
        MeetingStatus.CANCELLED: "Cancelled",
    },
    "ru": {
        MeetingStatus.SCHEDULED: "Назначена",
        MeetingStatus.CONFIRMED: "Подтверждена",
        MeetingStatus.POSTPONED: "Отложена",
        MeetingStatus.CLEARED: "Препятствия устранены",
        MeetingStatus.RESCHEDULED: "Перенесена",
        MeetingStatus.IN_PROGRESS: "Идёт",
        MeetingStatus.CONCLUDED: "Завершена",
        MeetingStatus.CANCELLED: "Отменена",
    },
}

#: Separators a reason may put after a leading status word ("postponed; ...").
_SEPARATORS = " ;:,.-\u2013\u2014()"


def status_name(status: MeetingStatus | str, locale: str) -> str:
    """The name of `status` in `locale` (English for a locale without a catalogue)."""
    key = MeetingStatus(status) if not isinstance(status, MeetingStatus) else status
    return STATUS.get(locale, STATUS["en"])[key]


def beyond(reason: str | None, status: MeetingStatus | str) -> str:
    """`reason` as far as it adds to `status`: empty when it only names the status (in any
    catalogue's words, or the status's own value), and without a leading status word."""
    text = (reason or "").strip()
    if not text:
        return ""
    key = MeetingStatus(status) if not isinstance(status, MeetingStatus) else status
    names = {key.value.replace("_", " "), key.value}
    names |= {words[key].casefold() for words in STATUS.values()}
    folded = text.casefold()
    for name in sorted(names, key=len, reverse=True):
        if folded.rstrip(_SEPARATORS) == name:
            return ""
        if folded.startswith(name) and not folded[len(name) : len(name) + 1].isalnum():
            rest = text[len(name) :].lstrip(_SEPARATORS).rstrip(")")
            return rest
    return text


#: The name of each kind of news, per locale: email subjects, chat headlines, the pages'
#: timeline and the "send me" choices.
KIND: dict[str, dict[str, str]] = {
    "en": {
        "meeting.scheduled": "Scheduled",
        "meeting.confirmed": "Confirmed",
        "meeting.postponed": "Postponed",
        "meeting.cleared": "Cleared",
        "meeting.rescheduled": "Rescheduled",
        "meeting.started": "Started",
        "meeting.concluded": "Concluded",
        "meeting.cancelled": "Cancelled",
        "meeting.updated": "Details changed",
        "meeting.reminder": "Reminder",
    },
    "ru": {
        "meeting.scheduled": "Назначена",
        "meeting.confirmed": "Подтверждена",
        "meeting.postponed": "Отложена",
        "meeting.cleared": "Препятствия устранены",
        "meeting.rescheduled": "Перенесена",
        "meeting.started": "Началась",
        "meeting.concluded": "Завершена",
        "meeting.cancelled": "Отменена",
        "meeting.updated": "Изменены сведения",
        "meeting.reminder": "Напоминание",
    },
}


def kind_name(kind: str, locale: str) -> str:
    """The name of the kind of news `kind` (``meeting.postponed``) in `locale`."""
    return KIND.get(locale, KIND["en"]).get(kind, kind)


def reminder_words(offset: timedelta, locale: str) -> str:
    """A reminder choice in words: ``1 day before``, ``за 1 день``."""
    amount = str(format_timedelta(offset, locale=locale))
    if locale != "ru":
        return f"{amount} before"
    # "за" takes the accusative: "за день", "за час", "за минуту", "за 15 минут".
    number, _, unit = amount.partition(" ")
    if number == "1":
        amount = {"минута": "минуту", "неделя": "неделю", "секунда": "секунду"}.get(unit, unit)
    elif unit in ("минута", "неделя", "секунда"):  # 21 минута -> за 21 минуту
        amount = f"{number} {unit[:-1]}у"
    return f"за {amount}"


#: Short zone names a language writes its own way (Russian text says МСК, not MSK).
_ABBREVIATIONS = {"ru": {"MSK": "МСК"}}


def zone_abbreviation(local: datetime, locale: str = "en") -> str:
    """The zone's short name at that instant as `locale` writes it (``MSK``, ``EST``;
    ``МСК`` in Russian), or ``UTC+04`` for a zone tzdata gives no abbreviation."""
    zone = local.tzname() or ""
    if zone[:1] in "+-":
        return f"UTC{zone}"
    return _ABBREVIATIONS.get(locale.split("-")[0], {}).get(zone, zone)


def moment(value: datetime, zone: str, locale: str, *, year: bool = False) -> str:
    """An instant as a reader reads it in `zone`: ``21:00 MSK, Thursday 10 December``
    (``четверг, 10 декабря`` in Russian); `year` adds the year."""
    tz = ZoneInfo(zone)
    local = value.astimezone(tz)
    pattern = (
        ("EEEE d MMMM y" if year else "EEEE d MMMM")
        if locale != "ru"
        else ("EEEE, d MMMM y" if year else "EEEE, d MMMM")
    )
    day = format_datetime(local, pattern, tzinfo=tz, locale=locale)
    return f"{local:%H:%M} {zone_abbreviation(local, locale)}, {day}"
