"""The words every face uses for what a meeting's status is, one catalogue per locale:
emails, chat, the public pages, the feeds. A status has one name in each language, and no
two statuses share one ("postponed" and "rescheduled" read differently in Russian too).

`beyond` keeps a reason from saying the status again: "Postponed (postponed)" becomes
"Postponed", and "postponed; a new date will follow" is shown as "a new date will follow".
"""

from __future__ import annotations

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
        MeetingStatus.CLEARED: "Препятствие снято",
        MeetingStatus.RESCHEDULED: "Перенесена на новое время",
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
