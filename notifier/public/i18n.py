"""The public pages' words in English and Russian, and which language a reader gets."""

from __future__ import annotations

from notifier.words import STATUS as WORDS_STATUS

LANGUAGES = ("en", "ru")

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "upcoming": "Upcoming",
        "recent": "Recent and called off",
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
        "site_description": "{site}: the status of each meeting, its changes as they happen, "
        "and email news of them.",
        "skip": "Skip to the content",
        "times_note": "Times are given in each meeting's own time zone unless you choose yours.",
        "index_intro": "Each meeting's status as it stands, and every change to it. Open a "
        "meeting to see its times in your own zone or to get its news by email.",
        "none_upcoming": "No meetings are coming up.",
        "none_recent": "No meetings have taken place or been called off yet.",
        "zone_hint": "Type a city, a country or a zone name, for example Berlin or Europe/Berlin.",
        "og_locale": "en_GB",
        "over_cancelled": "This meeting has been cancelled: there will be no more news of it.",
        "over_concluded": "This meeting has concluded: there will be no more news of it.",
        "all_feed": "All meetings (Atom)",
        "rescheduled_to": "Rescheduled to {time}",
        "starts": "starts {time}",
        "cleared_one": "condition met: {items}",
        "cleared_many": "conditions met: {items}",
        "confirm_text": "Confirm that news of {subject} may be sent to {address}.",
        "confirm_ignore": "If you did not ask for this, close this page: nothing will be sent.",
        "confirmed_of": "News of {subject} will be sent to {address}. Every email has a link "
        "to change your choices or to leave.",
        "error_code": "Error {code}",
        "manage_for": "News sent to {address}.",
        "private_calendar_text": "Add this address to your calendar app to see these meetings "
        "there. It is private to you: do not share it.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_email": "Stop sending news to {address}?",
        "unsubscribe_webhook": "Stop sending webhooks to {address}?",
        "unsubscribe_chat": "Stop sending chat messages for {address}?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribe_keep": "To keep getting news, close this page: nothing changes until you "
        "press the button.",
        "unsubscribed": "You are unsubscribed",
        "unsubscribed_text": "Nothing more will be sent to {address}. To get news again, "
        "subscribe on a meeting's page.",
        "page_not_found": "Page not found",
        "page_not_found_text": "There is nothing at this address. It may have been mistyped, "
        "or the meeting may not be public.",
        "gone": "This meeting has been withdrawn",
        "gone_text": "It is no longer published here.",
        "method_not_allowed": "This page cannot do that",
        "method_not_allowed_text": "Go back and use the page's own buttons and links.",
    },
    "ru": {
        "upcoming": "Предстоящие",
        "recent": "Прошедшие и отменённые",
        "none": "Пока ничего нет.",
        "when": "Когда",
        "your_time": "ваше время",
        "local_time": "местное время",
        "where": "Где",
        "pending": "Условия проведения",
        "history": "История изменений",
        "subscribe": "Подписаться",
        "subscribe_intro": "Мы будем сообщать по электронной почте обо всех изменениях, "
        "касающихся встречи. Сначала придёт письмо для подтверждения подписки; других писем не "
        "будет, пока вы не перейдёте по ссылке из него.",
        "email": "Адрес электронной почты",
        "zone": "Часовой пояс",
        "show_in": "Показывать время в часовом поясе",
        "show": "Показать",
        "language": "Язык",
        "kinds": "О чём сообщать",
        "reminders": "Напомнить о начале",
        "feeds": "Ленты",
        "atom": "Лента Atom",
        "calendar": "Добавить в календарь",
        "check_mail": "Проверьте почту",
        "check_mail_text": "Если на этот адрес можно доставить почту, на него уже отправлено "
        "письмо для подтверждения подписки. Перейдите по ссылке из письма — она действует "
        "ограниченное время.",
        "confirm_title": "Подтвердите подписку",
        "confirm_button": "Подтвердить",
        "confirmed": "Подписка подтверждена",
        "confirmed_text": "Вы будете получать письмо при каждом изменении, касающемся встречи. В "
        "каждом письме есть ссылка, по которой можно изменить подписку или отписаться.",
        "bad_link": "Ссылка не работает",
        "bad_link_text": "Ссылка уже использована, устарела или заменена новой. Оформите подписку "
        "заново на странице встречи.",
        "manage": "Ваша подписка",
        "save": "Сохранить",
        "saved": "Изменения сохранены.",
        "leave": "Отписаться от всех уведомлений",
        "left": "Подписка отменена",
        "left_text": "Больше писем не будет.",
        "private_calendar": "Ваш личный календарь встреч",
        "new_links": "Создать новые ссылки (старые перестанут действовать)",
        "too_many": "Слишком много запросов",
        "too_many_text": "Попробуйте позже.",
        "form_expired": "Срок действия формы истёк",
        "form_expired_text": "Обновите страницу и отправьте форму ещё раз.",
        "not_found": "Не найдено",
        "not_found_text": "Такой встречи нет среди опубликованных.",
        "bad_email": "Некорректный адрес электронной почты",
        "bad_email_text": "Вернитесь и проверьте адрес.",
        "bad_form": "Не удалось обработать форму",
        "bad_form_text": "Вернитесь назад, проверьте введённые данные и отправьте форму ещё раз.",
        "no_kinds": "Выберите хотя бы один тип уведомлений",
        "no_kinds_text": "Вернитесь и отметьте хотя бы один пункт или отпишитесь от всех "
        "уведомлений.",
        "unavailable": "Не удалось выполнить запрос",
        "unavailable_text": "Изменения не внесены. Повторите попытку через несколько минут.",
        "back": "Все встречи",
        "site_description": "{site}: текущий статус встреч, оперативные сообщения об изменениях и "
        "уведомления по электронной почте.",
        "skip": "Перейти к содержанию",
        "times_note": "Время указано в часовом поясе места встречи, если вы не выбрали свой.",
        "index_intro": "Текущий статус каждой встречи и история изменений. Откройте встречу, "
        "чтобы посмотреть время в своём часовом поясе или подписаться на уведомления по "
        "электронной почте.",
        "none_upcoming": "Предстоящих встреч нет.",
        "none_recent": "Прошедших или отменённых встреч пока нет.",
        "zone_hint": "Введите город, страну или название часового пояса, например Берлин или "
        "Europe/Berlin.",
        "og_locale": "ru_RU",
        "over_cancelled": "Встреча отменена: уведомлений о ней больше не будет.",
        "over_concluded": "Встреча завершена: уведомлений о ней больше не будет.",
        "all_feed": "Все встречи (Atom)",
        "rescheduled_to": "Новое время: {time}",
        "starts": "начало: {time}",
        "cleared_one": "выполнено условие: {items}",
        "cleared_many": "выполнены условия: {items}",
        "confirm_text": "Подтвердите, что на адрес {address} можно присылать уведомления "
        "{subject}.",
        "confirm_ignore": "Если вы не подписывались, просто закройте страницу: писем не будет.",
        "confirmed_of": "Уведомления {subject} будут приходить на адрес {address}. В каждом "
        "письме есть ссылка, по которой можно изменить подписку или отписаться.",
        "error_code": "Ошибка {code}",
        "manage_for": "Уведомления приходят на адрес {address}.",
        "private_calendar_text": "Добавьте эту ссылку в приложение-календарь, чтобы видеть в нём "
        "ваши встречи. Ссылка личная: не передавайте её другим.",
        "unsubscribe_title": "Отмена подписки",
        "unsubscribe_email": "Больше не присылать уведомления на адрес {address}?",
        "unsubscribe_webhook": "Больше не отправлять вебхуки на адрес {address}?",
        "unsubscribe_chat": "Больше не отправлять сообщения в чат {address}?",
        "unsubscribe_button": "Отписаться",
        "unsubscribe_keep": "Чтобы и дальше получать уведомления, просто закройте страницу: пока "
        "вы не нажмёте кнопку, ничего не изменится.",
        "unsubscribed": "Подписка отменена",
        "unsubscribed_text": "На адрес {address} больше не будут приходить уведомления. Чтобы "
        "снова их получать, оформите подписку на странице встречи.",
        "page_not_found": "Страница не найдена",
        "page_not_found_text": "По этому адресу ничего нет. Возможно, в нём опечатка или встреча "
        "не открыта для публики.",
        "gone": "Встреча снята с публикации",
        "gone_text": "Сведения о ней здесь больше не публикуются.",
        "method_not_allowed": "Это действие здесь недоступно",
        "method_not_allowed_text": "Вернитесь назад и воспользуйтесь кнопками и ссылками на "
        "странице.",
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
