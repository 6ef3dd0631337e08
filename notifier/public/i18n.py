"""The public pages' words in English and Russian, and which language a reader gets."""

from __future__ import annotations

from notifier.words import STATUS as WORDS_STATUS

LANGUAGES = ("en", "ru")

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "upcoming": "Upcoming",
        "recent": "Recent",
        "none": "Nothing to show yet.",
        "when": "When",
        "your_time": "your time",
        "local_time": "local time",
        "where": "Where",
        "pending": "Pending",
        "history": "History",
        "subscribe": "Subscribe",
        "subscribe_intro": "Get an email when this meeting changes. We send one email to "
        "confirm first; nothing else until you follow its link.",
        "email": "Email address",
        "zone": "Time zone",
        "show_in": "Show times in",
        "show": "Show",
        "language": "Language",
        "kinds": "Send me",
        "reminders": "Remind me before it starts",
        "feeds": "Feeds",
        "atom": "Atom feed",
        "calendar": "Add to calendar",
        "check_mail": "Check your mail",
        "check_mail_text": "If the address can receive news, a confirmation email is on its "
        "way. Follow its link to start; it works for a limited time.",
        "confirm_title": "Confirm your subscription",
        "confirm_button": "Confirm",
        "confirmed": "Subscription confirmed",
        "confirmed_text": "You will get an email when the meeting changes. Every email has a "
        "link to change your choices or leave.",
        "bad_link": "This link does not work",
        "bad_link_text": "It was used already, has run out, or was changed. Subscribe again "
        "from the meeting's page.",
        "manage": "Your subscription",
        "save": "Save",
        "saved": "Saved.",
        "leave": "Unsubscribe from everything",
        "left": "You are unsubscribed",
        "left_text": "Nothing more will be sent to you.",
        "private_calendar": "Your calendar of these meetings",
        "new_links": "Make new links (the old ones stop working)",
        "too_many": "Too many requests",
        "too_many_text": "Please try again later.",
        "form_expired": "This form has expired",
        "form_expired_text": "Reload the page and send it again.",
        "not_found": "Not found",
        "not_found_text": "There is no such public meeting.",
        "bad_email": "That is not an email address",
        "bad_email_text": "Go back and check the address.",
        "bad_form": "This form could not be read",
        "bad_form_text": "Go back, check what you entered and send it again.",
        "no_kinds": "Choose at least one kind of news",
        "no_kinds_text": "Go back and tick at least one, or unsubscribe from everything.",
        "unavailable": "Something went wrong",
        "unavailable_text": "Nothing was changed. Please try again in a few minutes.",
        "back": "All meetings",
        "kind.meeting.scheduled": "Scheduled",
        "kind.meeting.confirmed": "Confirmed",
        "kind.meeting.postponed": "Postponed",
        "kind.meeting.cleared": "Cleared",
        "kind.meeting.rescheduled": "Rescheduled",
        "kind.meeting.started": "Started",
        "kind.meeting.concluded": "Concluded",
        "kind.meeting.cancelled": "Cancelled",
        "kind.meeting.updated": "Details changed",
        "rescheduled_to": "Rescheduled to {time}",
    },
    "ru": {
        "upcoming": "Предстоящие",
        "recent": "Прошедшие",
        "none": "Пока ничего нет.",
        "when": "Когда",
        "your_time": "ваше время",
        "local_time": "местное время",
        "where": "Где",
        "pending": "Ожидается",
        "history": "История",
        "subscribe": "Подписаться",
        "subscribe_intro": "Письмо, когда встреча изменится. Сначала мы пришлём одно письмо "
        "для подтверждения; больше ничего, пока вы не откроете ссылку из него.",
        "email": "Адрес почты",
        "zone": "Часовой пояс",
        "show_in": "Показывать время в поясе",
        "show": "Показать",
        "language": "Язык",
        "kinds": "Присылать",
        "reminders": "Напомнить до начала",
        "feeds": "Ленты",
        "atom": "Лента Atom",
        "calendar": "Добавить в календарь",
        "check_mail": "Проверьте почту",
        "check_mail_text": "Если на этот адрес можно присылать новости, письмо для "
        "подтверждения уже в пути. Откройте ссылку из него; она действует ограниченное время.",
        "confirm_title": "Подтвердите подписку",
        "confirm_button": "Подтвердить",
        "confirmed": "Подписка подтверждена",
        "confirmed_text": "Вы получите письмо, когда встреча изменится. В каждом письме есть "
        "ссылка, чтобы изменить подписку или отписаться.",
        "bad_link": "Ссылка не работает",
        "bad_link_text": "Она уже использована, устарела или заменена. Подпишитесь снова на "
        "странице встречи.",
        "manage": "Ваша подписка",
        "save": "Сохранить",
        "saved": "Сохранено.",
        "leave": "Отписаться от всего",
        "left": "Вы отписаны",
        "left_text": "Больше писем не будет.",
        "private_calendar": "Ваш календарь этих встреч",
        "new_links": "Сделать новые ссылки (старые перестанут работать)",
        "too_many": "Слишком много запросов",
        "too_many_text": "Попробуйте позже.",
        "form_expired": "Форма устарела",
        "form_expired_text": "Обновите страницу и отправьте снова.",
        "not_found": "Не найдено",
        "not_found_text": "Такой открытой встречи нет.",
        "bad_email": "Это не адрес почты",
        "bad_email_text": "Вернитесь и проверьте адрес.",
        "bad_form": "Не удалось прочитать форму",
        "bad_form_text": "Вернитесь, проверьте введённое и отправьте снова.",
        "no_kinds": "Выберите хотя бы один вид новостей",
        "no_kinds_text": "Вернитесь и отметьте хотя бы один или отпишитесь от всего.",
        "unavailable": "Что-то пошло не так",
        "unavailable_text": "Ничего не изменено. Попробуйте снова через несколько минут.",
        "back": "Все встречи",
        "kind.meeting.scheduled": "Запланирована",
        "kind.meeting.confirmed": "Подтверждена",
        "kind.meeting.postponed": "Перенесена",
        "kind.meeting.cleared": "Препятствия сняты",
        "kind.meeting.rescheduled": "Назначена на новое время",
        "kind.meeting.started": "Началась",
        "kind.meeting.concluded": "Завершена",
        "kind.meeting.cancelled": "Отменена",
        "kind.meeting.updated": "Изменены подробности",
        "rescheduled_to": "Перенесена на {time}",
    },
}

# One catalogue of status names for every face (emails, chat, pages, feeds).
STATUS = WORDS_STATUS


def language(asked: str | None, accept: str | None) -> str:
    """The language of a page: `asked` (the switch) if offered, else the best of the
    ``Accept-Language`` header, else English."""
    if asked in LANGUAGES:
        return asked
    best, best_q = "en", -1.0
    for part in (accept or "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best
