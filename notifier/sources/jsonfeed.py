"""JSON status feeds: a list of meetings, each with its current status.

The documented shape is ``{"meetings": [{"id", "title", "status", "starts_at", "timezone",
"reason", "location", "sequence"}]}`` (or the list alone). `fields` in the source's config
maps these names to the feed's own, with dots for nesting: ``{ id = "uid", status =
"state.code" }``; ``items`` names where the list is (default ``meetings``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.domain.models import MeetingStatus
from notifier.sources.feed import FeedItem
from notifier.sources.ics import FeedError, ParsedFeed

FIELDS = ("id", "title", "status", "starts_at", "timezone", "reason", "location", "sequence")


def _get(item: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    return item


def _one_or_many(value: Any, name: str) -> tuple[str, dict[str, str]]:
    """A text field as the feed gives it: plain, or by language (``{"en": "Talks", "ru":
    "Переговоры"}``): the first text, and the texts by language."""
    if isinstance(value, dict):
        texts: dict[str, str] = {}
        for code, text in value.items():
            code = str(code).replace("_", "-").split("-")[0].lower()
            if not re.fullmatch(r"[a-z]{2,3}", code) or not isinstance(text, str | int | float):
                raise ValueError(f"{name}: a text, or texts by language code")
            texts.setdefault(code, str(text))
        return next(iter(texts.values()), ""), texts
    return str(value or ""), {}


def parse_json_feed(
    body: bytes, *, fields: dict[str, str] | None = None, default_timezone: str = "UTC"
) -> ParsedFeed:
    """Feed items from a JSON feed, and each item that could not be read (and why)."""
    mapping = {name: name for name in FIELDS} | {
        k: v for k, v in (fields or {}).items() if k != "items"
    }
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise FeedError(f"not JSON: {exc}") from None
    listed = (
        _get(document, (fields or {}).get("items", "meetings"))
        if isinstance(document, dict)
        else document
    )
    if not isinstance(listed, list):
        raise FeedError("no list of meetings found (set fields.items to where it is)")
    parsed = ParsedFeed()
    for index, raw in enumerate(listed):
        label = f"(item {index})"
        try:
            uid = _get(raw, mapping["id"])
            if not uid:
                raise ValueError(f"no {mapping['id']}")
            label = str(uid)[:200]
            status = MeetingStatus(str(_get(raw, mapping["status"]) or "scheduled").lower())
            start_text = _get(raw, mapping["starts_at"])
            starts_at = datetime.fromisoformat(str(start_text))
            zone = str(_get(raw, mapping["timezone"]) or default_timezone)
            ZoneInfo(zone)
            if starts_at.tzinfo is None:
                starts_at = starts_at.replace(tzinfo=ZoneInfo(zone))
            sequence = _get(raw, mapping["sequence"])
            texts: dict[str, dict[str, str]] = {}
            said: dict[str, str] = {}
            for name in ("title", "reason", "location"):
                said[name], by_language = _one_or_many(_get(raw, mapping[name]), name)
                for code, text in by_language.items():
                    texts.setdefault(code, {})[name] = text
            parsed.items.append(
                FeedItem(
                    uid=str(uid),
                    title=said["title"] or str(uid),
                    starts_at=starts_at,
                    status=status,
                    timezone=zone,
                    reason=said["reason"],
                    location=said["location"],
                    sequence=int(sequence) if sequence is not None else None,
                    texts=texts,
                )
            )
        except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
            parsed.refused.append((label, str(exc)[:300]))
    return parsed
