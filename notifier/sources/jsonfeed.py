"""JSON status feeds: a list of meetings, each with its current status.

The documented shape is ``{"meetings": [{"id", "title", "status", "starts_at", "timezone",
"reason", "location", "sequence"}]}`` (or the list alone). `fields` in the source's config
maps these names to the feed's own, with dots for nesting: ``{ id = "uid", status =
"state.code" }``; ``items`` names where the list is (default ``meetings``).
"""

from __future__ import annotations

import json
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
            parsed.items.append(
                FeedItem(
                    uid=str(uid),
                    title=str(_get(raw, mapping["title"]) or uid),
                    starts_at=starts_at,
                    status=status,
                    timezone=zone,
                    reason=str(_get(raw, mapping["reason"]) or ""),
                    location=str(_get(raw, mapping["location"]) or ""),
                    sequence=int(sequence) if sequence is not None else None,
                )
            )
        except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
            parsed.refused.append((label, str(exc)[:300]))
    return parsed
