"""Polling a watched source: conditional GET, parse, apply, back off when it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from notifier import __version__, metrics, service
from notifier.domain.errors import Conflict, InvalidChange, NotLeader
from notifier.domain.models import Source
from notifier.settings import SourceConfig
from notifier.sources.feed import (
    Change,
    Create,
    Details,
    FeedItem,
    actions_for,
    clean_item,
    meeting_id_for,
    snapshot,
)
from notifier.sources.ics import FeedError, parse_ics
from notifier.sources.jsonfeed import parse_json_feed
from notifier.store import Store

log = logging.getLogger(__name__)

#: The longest a failing source waits between polls.
MAX_BACKOFF = timedelta(hours=1)


@dataclass(kw_only=True)
class PollResult:
    """What one poll did."""

    #: changed | unchanged | not-modified | failed | waiting | handed-over
    outcome: str
    applied: int = 0
    problems: list[str] = field(default_factory=list)


def backoff(every: timedelta, failures: int) -> timedelta:
    """How long a source that failed `failures` times in a row waits before the next poll."""
    longest = max(MAX_BACKOFF, every)
    wait = every * (2 ** min(failures, 16))
    return wait if wait < longest else longest


class SourcePoller:
    """Polls one configured source and applies what changed."""

    def __init__(
        self,
        store: Store,
        config: SourceConfig,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime],
        default_timezone: str = "UTC",
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.config = config
        self.url = str(config.url)
        self.client = client
        self.clock = clock
        self.default_timezone = default_timezone
        self.on_change = on_change

    async def poll(self) -> PollResult:
        """Fetch the source (unless backing off), apply its changes, record its health.

        Given a `FencedStore`, a poll cut short by another replica taking the scheduler
        over ends with outcome ``handed-over``; what it applied is idempotent, so the new
        leader's next poll finishes the job.
        """
        try:
            return await self._poll()
        except NotLeader as exc:
            log.warning(
                "source %s: poll handed over: %s",
                self.url,
                exc.message,
                extra={"action": "source_handed_over"},
            )
            return PollResult(outcome="handed-over", problems=[exc.message])

    async def _poll(self) -> PollResult:
        now = self.clock()
        async with self.store.read() as tx:
            state = await tx.source_state(self.url)
        if state.get("next_poll_at") and now < state["next_poll_at"]:
            return PollResult(outcome="waiting")
        headers = {"user-agent": f"notifier/{__version__}"}
        if state.get("etag"):
            headers["if-none-match"] = state["etag"]
        if state.get("last_modified"):
            headers["if-modified-since"] = state["last_modified"]
        try:
            response = await self.client.get(self.url, headers=headers)
            if response.status_code == 304:
                await self._record(now, ok=True)
                return PollResult(outcome="not-modified")
            if response.status_code >= 400:
                raise FeedError(f"HTTP {response.status_code}")
            items, skipped = self._parse(response.content)
        except (httpx.HTTPError, FeedError) as exc:
            return await self._failed(now, state, str(exc) or type(exc).__name__)
        applied, problems, seen = await self._apply(items, state.get("seen") or {}, now=now)
        problems = skipped + problems
        await self._record(
            now,
            ok=True,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            seen=seen,
            error="; ".join(problems)[:2000] or None,
        )
        for problem in problems:
            log.warning("source %s: %s", self.url, problem, extra={"action": "source_item"})
        if applied:
            self.on_change()
        return PollResult(
            outcome="changed" if applied else "unchanged", applied=applied, problems=problems
        )

    def _parse(self, body: bytes) -> tuple[list[FeedItem], list[str]]:
        if self.config.kind == "ics":
            items, problems = parse_ics(body, default_timezone=self.default_timezone)
        else:
            items, problems = parse_json_feed(
                body, fields=self.config.fields, default_timezone=self.default_timezone
            )
        cleaned = []
        for item in items:
            safe, warning = clean_item(item)
            cleaned.append(safe)
            if warning:
                problems.append(warning)
        return cleaned, problems

    async def _apply(
        self, items: list[FeedItem], seen: dict[str, dict[str, object]], *, now: datetime
    ) -> tuple[int, list[str], dict[str, dict[str, object]]]:
        applied = 0
        problems: list[str] = []
        seen = dict(seen)
        for item in items:
            async with self.store.read() as tx:
                stored = await tx.meeting(meeting_id_for(item.uid))
            last = seen.get(item.uid)
            actions = actions_for(item, stored, source=self.url, last=last)
            if not actions and last and item.sequence is not None:
                last_sequence = last.get("sequence")
                if isinstance(last_sequence, int) and item.sequence < last_sequence:
                    continue  # an older revision: keep what the newer one said
            for action in actions:
                try:
                    result = await self._do(action, now=now)
                except (InvalidChange, Conflict) as exc:
                    problems.append(f"{item.uid}: {exc.message}")
                    continue
                if result is not None and not result.duplicate:
                    applied += 1
            seen[item.uid] = snapshot(item)
        return applied, problems, seen

    async def _do(
        self, action: Create | Change | Details, *, now: datetime
    ) -> service.ChangeResult | None:
        if isinstance(action, Create):
            return await service.create_meeting(
                self.store, action.meeting, now=now, event_id=action.event_id
            )
        if isinstance(action, Change):
            return await service.apply_status_change(self.store, action.change, now=now)
        return await service.update_meeting_details(
            self.store,
            action.meeting_id,
            action.fields,
            now=now,
            source=Source.FEED,
            event_id=action.event_id,
        )

    async def _record(self, now: datetime, *, ok: bool, **values: object) -> None:
        seen = values.pop("seen", None)
        async with self.store.write() as tx:
            await tx.save_source_state(
                self.url,
                self.config.kind,
                seen=seen if isinstance(seen, dict) else None,
                last_polled_at=now,
                last_ok_at=now,
                failures=0,
                next_poll_at=None,
                last_error=values.pop("error", None),
                **{k: v for k, v in values.items() if k in ("etag", "last_modified")},
            )

    async def _failed(self, now: datetime, state: dict[str, object], error: str) -> PollResult:
        metrics.SOURCE_POLL_ERRORS.labels(self.url).inc()
        previous = state.get("failures")
        failures = (previous if isinstance(previous, int) else 0) + 1
        wait = backoff(self.config.every, failures)
        async with self.store.write() as tx:
            await tx.save_source_state(
                self.url,
                self.config.kind,
                last_polled_at=now,
                failures=failures,
                next_poll_at=now + wait,
                last_error=error[:2000],
            )
        log.warning(
            "source %s failed (%d in a row), next try in %s: %s",
            self.url,
            failures,
            wait,
            error,
            extra={"action": "source_failed", "source": self.url, "failures": failures},
        )
        return PollResult(outcome="failed", problems=[error])
