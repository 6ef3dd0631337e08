"""A meeting's own text per language, and per audience within each language.

The installation lists its languages (`languages = ["en", "ru"]`); the first is the
fallback, and a meeting's plain fields (`title`, `reason`, ... and their variants by
audience) are its text in that language. Every other language is a layer, `texts`:
language -> field -> plain value, or a table of variants by audience (the audience rule
of `notifier.domain.audiences` applies inside each language). A reader gets their
language; a field with no text in it falls back to the fallback language's, and every
face says so (`field_languages`: the webhook body's ``data.languages``, ``lang`` in HTML).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifier.domain.audiences import Value, freeze
from notifier.domain.errors import InvalidChange

#: The text fields a meeting may give per language (`title` is never tiered by audience).
TEXT_FIELDS = ("title", "description", "location", "participants", "reason", "conditions")
#: Of those, what a status change sets (the rest change as details).
CHANGE_FIELDS = ("reason", "conditions")
#: One layer: field -> plain value, or variants by audience.
Layer = Mapping[str, Value | Mapping[str, Value]]
#: Language -> layer. Frozen by convention: never mutated once built.
Texts = Mapping[str, Layer]


@dataclass(frozen=True)
class Languages:
    """The installation's languages, the fallback first."""

    order: tuple[str, ...] = ("en", "ru")

    @property
    def base(self) -> str:
        """The fallback language: a meeting's plain fields are its text in it."""
        return self.order[0]

    def of(self, locale: str) -> str:
        """The language a reader of `locale` gets (``ru-RU`` -> ``ru``): theirs when it is
        one of these, else the fallback."""
        primary = locale.replace("_", "-").split("-")[0].lower()
        return primary if primary in self.order else self.base

    def check(self, texts: Mapping[str, Any] | None, *, where: str = "texts") -> None:
        """Refuse (`InvalidChange`, naming the field) a language that is not one of these
        or is the fallback (whose text is the plain fields), and a name that is not one of
        `TEXT_FIELDS`."""
        for language, layer in (texts or {}).items():
            if language not in self.order:
                raise InvalidChange(
                    f"{where}.{language}: unknown language {language!r}; languages are "
                    + ", ".join(self.order)
                )
            if language == self.base:
                raise InvalidChange(
                    f"{where}.{language}: {language} is the fallback language: give its text "
                    f"in the meeting's own fields, not under {where}"
                )
            for name in layer:
                if name not in TEXT_FIELDS:
                    raise InvalidChange(
                        f"{where}.{language}.{name}: not a text field ({', '.join(TEXT_FIELDS)})"
                    )


def freeze_texts(raw: Mapping[str, Mapping[str, object]] | None) -> dict[str, dict[str, Any]]:
    """Texts as the domain keeps them: lists as tuples, tables of variants frozen, empty
    layers dropped."""
    frozen: dict[str, dict[str, Any]] = {}
    for language, layer in (raw or {}).items():
        kept: dict[str, Any] = {}
        for name, value in layer.items():
            if value is None:
                continue
            if isinstance(value, Mapping):
                tiers = freeze({name: value}).get(name)
                if tiers:
                    kept[name] = tiers
            elif isinstance(value, list | tuple):
                kept[name] = tuple(str(v) for v in value)
            else:
                kept[name] = str(value)
        if kept:
            frozen[language] = kept
    return frozen


def thaw_texts(texts: Texts) -> dict[str, dict[str, Any]] | None:
    """Texts as JSON-ready data; None when there are none."""
    if not texts:
        return None
    return {
        language: {name: _thawed(value) for name, value in layer.items()}
        for language, layer in texts.items()
    }


def _thawed(value: object) -> object:
    if isinstance(value, Mapping):
        return {a: list(v) if isinstance(v, tuple) else v for a, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


def layer_fields(layer: Layer) -> tuple[dict[str, object], dict[str, Mapping[str, Value]]]:
    """One layer split as `Meeting.replace` takes it: plain values, and variants."""
    plain: dict[str, object] = {}
    tiers: dict[str, Mapping[str, Value]] = {}
    for name, value in layer.items():
        if isinstance(value, Mapping):
            tiers[name] = value
            plain[name] = () if name in ("participants", "conditions", "cleared") else ""
        else:
            plain[name] = value
    return plain, tiers


def merged(texts: Texts, changes: Texts, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """`texts` with each language's fields in `changes` set, and the fields in `drop` gone
    from every language that `changes` does not give them for (a change's reason is its
    own: the next change without one in a language says none there)."""
    result: dict[str, dict[str, Any]] = {lang: dict(layer) for lang, layer in texts.items()}
    for kept in result.values():
        for name in drop:
            kept.pop(name, None)
    for language, given in changes.items():
        result.setdefault(language, {}).update(given)
    return {lang: kept for lang, kept in result.items() if kept}


def field_languages(
    shown: object, given: Mapping[str, object], language: str, base: str
) -> dict[str, str]:
    """For each text field `shown` (a meeting or entry as the reader sees it) says
    something in, the language it is in: the reader's `language` where `given` (the
    layer of that language) has the field, else the fallback `base`."""
    return {
        name: (language if language != base and name in given else base)
        for name in (*TEXT_FIELDS, "cleared")
        if getattr(shown, name, None)
    }
