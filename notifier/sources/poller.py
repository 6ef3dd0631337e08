"""Polling a watched source: conditional GET, parse off the loop, apply in chunks, back off.

One poll of a source at a time (a poll still running when the next is due is skipped).
The body is read up to `feeds.max_bytes`; parsing runs in a parser process, not in the
daemon's, so a 17,000-event feed does not hold up the API or the outbox, and within a time
and memory budget (`feeds.parse_timeout`, `feeds.parse_memory_mib`): a feed over it is
refused alone, with its reason as the source's last error. Items are applied in chunks of
`parsers.CHUNK`, each chunk's changes and the feed's progress committed together, so a
restart resumes where the last chunk ended. An item the feed has not changed since it was
last read costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy.exc import IntegrityError

from notifier import __version__, metrics, service
from notifier.configfile import SourceConfig
from notifier.domain.errors import Conflict, InvalidChange, NotFound, NotLeader
from notifier.domain.models import MeetingStatus, Source, StatusChange
from notifier.domain.text import clean_text
from notifier.sources.feed import (
    Action,
    Change,
    Create,
    Details,
    FeedItem,
    actions_for,
    meeting_id_for,
)
from notifier.sources.ics import FeedError, ParsedFeed
from notifier.sources.parsers import Parsed, Parsers
from notifier.store.port import StorePort, TransactionPort
from notifier.store.records import SourceState

log = logging.getLogger(__name__)

#: The longest a failing source waits between polls.
MAX_BACKOFF = timedelta(hours=1)
#: Problems remembered per source, to log each once (the counts stay exact past this).
MAX_PROBLEMS = 2000
#: The default cap on a feed's size (`feeds.max_bytes`).
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_FEED_KEY = "(feed)"
#: The parser processes of pollers given none (the daemon gives its own, per settings).
SHARED_PARSERS = Parsers()


@dataclass(kw_only=True)
class PollResult:
    """What one poll did."""

    #: changed | unchanged | not-modified | failed | waiting | busy | handed-over
    outcome: str
    applied: int = 0
    #: One line per skipped or refused event (``key: reason``) and per feed-level note.
    problems: list[str] = field(default_factory=list)
    followed: int = 0
    skipped: int = 0
    refused: int = 0


def backoff(every: timedelta, failures: int) -> timedelta:
    """How long a source that failed `failures` times in a row waits before the next poll."""
    longest = max(MAX_BACKOFF, every)
    wait = every * (2 ** min(failures, 16))
    return wait if wait < longest else longest


class SourcePoller:
    """Polls one configured source and applies what changed."""

    def __init__(
        self,
        store: StorePort,
        config: SourceConfig,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime],
        default_timezone: str | None = None,
        on_change: Callable[[], None] = lambda: None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        parsers: Parsers | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.url = str(config.url)
        self.client = client
        self.clock = clock
        self.default_timezone = default_timezone or config.timezone
        self.on_change = on_change
        self.max_bytes = max_bytes
        self.parsers = parsers or SHARED_PARSERS
        self._busy = asyncio.Lock()

    async def poll(self) -> PollResult:
        """Fetch the source (unless backing off or already polling), apply what changed.

        Given a `FencedStore`, a poll cut short by another replica taking the scheduler
        over ends with outcome ``handed-over``; what it applied is idempotent, so the new
        leader's next poll finishes the job.
        """
        if self._busy.locked():
            return PollResult(outcome="busy")
        async with self._busy:
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
        if state.next_poll_at and now < state.next_poll_at:
            return PollResult(outcome="waiting")
        headers = {"user-agent": f"notifier/{__version__}"}
        if state.etag:
            headers["if-none-match"] = state.etag
        if state.last_modified:
            headers["if-modified-since"] = state.last_modified
        try:
            status, body, answer = await self._fetch(headers)
            if status == 304:
                # The content is what was last read: so are its refused events and notes,
                # and the error that tells of them stays until the content changes.
                await self._record(now, error=_summary(state.problems, state.counts))
                return PollResult(outcome="not-modified")
            if status >= 400:
                raise FeedError(f"HTTP {status}")
            parsed = await self.parsers.parse(
                self.config, body, answer.get("content-type"), now, self.default_timezone
            )
        except (httpx.HTTPError, FeedError) as exc:
            return await self._failed(now, state, str(exc) or type(exc).__name__)
        return await self._apply(parsed, state, answer, now=now)

    async def _fetch(self, headers: dict[str, str]) -> tuple[int, bytes, httpx.Headers]:
        """The response's status, body (at most `max_bytes`) and headers."""
        async with self.client.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 304 or response.status_code >= 400:
                return response.status_code, b"", response.headers
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise FeedError(self._too_big(int(declared)))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FeedError(self._too_big(size, more=True))
                chunks.append(chunk)
            return response.status_code, b"".join(chunks), response.headers

    def _too_big(self, size: int, *, more: bool = False) -> str:
        return (
            f"the feed is {'over ' if more else ''}{size:,} bytes, more than "
            f"feeds.max_bytes ({self.max_bytes:,}); not read"
        )

    async def _apply(
        self, parsed: Parsed, state: SourceState, answer: httpx.Headers, *, now: datetime
    ) -> PollResult:
        async with self.store.read() as tx:
            previous_seen: dict[str, dict[str, object]] = await tx.source_items(self.url)
        seen = dict(previous_seen)
        feed = parsed.feed
        problems: dict[str, str] = {}
        for key, reason in feed.skipped + feed.refused:
            problems.setdefault(_label(key), _label(reason, 500))
        for note in feed.notes:
            problems.setdefault(f"{_FEED_KEY} {len(problems)}", _label(note, 500))
        refused_in_apply = 0
        applied = 0
        counts = {
            "followed": len(parsed.keys),
            "skipped": len(feed.skipped),
            "refused": len(feed.refused),
            "applied": 0,
            "to_apply": len(parsed.keys),
            "done": 0,
        }
        for batch in parsed.batches:
            # Unpickled one chunk at a time: 17,000 items at once would hold the
            # interpreter for a tenth of a second.
            chunk: list[tuple[FeedItem, dict[str, object]]] = pickle.loads(batch)
            # Items the feed has not changed since the last read need no work at all.
            todo = [(item, said) for item, said in chunk if previous_seen.get(item.ident) != said]
            if todo:
                done, chunk_problems = await self._apply_chunk(
                    todo, seen, now=now, counts=counts, read=len(chunk)
                )
                applied += done
                refused_in_apply += len(chunk_problems)
                problems.update(
                    {_label(key): _label(reason, 500) for key, reason in chunk_problems.items()}
                )
            counts["done"] += len(chunk)
            counts["applied"] = applied
            await asyncio.sleep(0)  # let the API and the outbox in between chunks
        # An edited instance that could not be read keeps what readers were told: neither
        # cancelled as gone nor forgotten.
        produced = set(parsed.keys) | set(feed.held)
        gone, gone_problems = await self._series_gone(feed, produced, seen, now=now)
        applied += gone
        problems.update({_label(k): _label(r, 500) for k, r in gone_problems.items()})
        counts.update(applied=applied, refused=len(feed.refused) + refused_in_apply)
        self._log_new(problems, state.problems)
        await self._record(
            now,
            etag=answer.get("etag"),
            last_modified=answer.get("last-modified"),
            forget=[key for key in seen if key not in produced],
            counts=counts,
            problems=dict(list(problems.items())[:MAX_PROBLEMS]),
            error=_summary(problems, counts),
        )
        for state_name in ("followed", "skipped", "refused"):
            metrics.SOURCE_EVENTS.labels(self.url, state_name).set(counts[state_name])
        if applied:
            metrics.SOURCE_CHANGES.labels(self.url).inc(applied)
            self.on_change()
        return PollResult(
            outcome="changed" if applied else "unchanged",
            applied=applied,
            problems=[f"{key}: {reason}" for key, reason in problems.items()],
            followed=counts["followed"],
            skipped=counts["skipped"],
            refused=counts["refused"],
        )

    async def _apply_chunk(
        self,
        todo: list[tuple[FeedItem, dict[str, object]]],
        seen: dict[str, dict[str, object]],
        *,
        now: datetime,
        counts: dict[str, int],
        read: int,
    ) -> tuple[int, dict[str, str]]:
        """Apply one chunk and record it as read, in one transaction: new meetings in bulk,
        other changes one by one (item by item in transactions of their own if the chunk
        as a whole hits a clash, so one item cannot hold up the rest)."""
        chunk = [item for item, _ in todo]
        said = {item.ident: value for item, value in todo}
        planned: list[tuple[FeedItem, list[Action]]] = []
        problems: dict[str, str] = {}
        async with self.store.read() as tx:
            records = await tx.meeting_records_by_id([meeting_id_for(item.ident) for item in chunk])
        for item in chunk:
            record = records.get(meeting_id_for(item.ident))
            if record is not None and record.retired_at is not None:
                problems[item.ident[:200]] = "its meeting was retired; the feed is not followed"
                continue
            stored = record.meeting if record is not None else None
            if stored is None and item.status is MeetingStatus.CANCELLED and item.series:
                # A cancelled occurrence nobody was told of: no meeting to make.
                continue
            actions = actions_for(
                item,
                stored,
                source=self.url,
                last=seen.get(item.ident),
                audience=self.config.audience,
                languages=self.store.planning.languages,
            )
            planned.append((item, actions))
        progress = {**counts, "done": counts["done"] + read}
        creates = [
            (action.meeting, action.event_id)
            for _, actions in planned
            for action in actions
            if isinstance(action, Create)
        ]
        try:
            async with self.store.write() as tx:
                applied = await service.create_meetings_in(
                    tx, self.store.planning, creates, now=now
                )
                for item, actions in planned:
                    others = [a for a in actions if not isinstance(a, Create)]
                    applied += await self._do_all(tx, item, others, problems, now)
                await tx.save_source_items(self.url, said)
                await tx.save_source_state(self.url, self.config.kind, counts=progress)
        except IntegrityError as exc:  # one item's clash: apply the chunk item by item
            log.info(
                "source %s: a chunk clashed (%s); applying it item by item",
                self.url,
                type(exc).__name__,
                extra={"action": "source_chunk_retry"},
            )
        else:
            seen.update(said)
            return applied, problems
        applied = 0
        for item, actions in planned:
            try:
                async with self.store.write() as tx:
                    applied += await self._do_all(tx, item, actions, problems, now)
            except IntegrityError as exc:  # this item is refused, the rest go on
                problems[item.ident[:200]] = f"could not be applied: {type(exc).__name__}"
        async with self.store.write() as tx:
            await tx.save_source_items(self.url, said)
            await tx.save_source_state(self.url, self.config.kind, counts=progress)
        seen.update(said)
        return applied, problems

    async def _do_all(
        self,
        tx: TransactionPort,
        item: FeedItem,
        actions: Sequence[Action],
        problems: dict[str, str],
        now: datetime,
    ) -> int:
        applied = 0
        for action in actions:
            try:
                result = await self._do(tx, action, now)
            except (InvalidChange, Conflict, NotFound) as exc:
                problems[item.ident[:200]] = exc.message
                continue
            if result is not None and not result.duplicate:
                applied += 1
        return applied

    async def _do(
        self, tx: TransactionPort, action: Action, now: datetime
    ) -> service.ChangeResult | None:
        plan = self.store.planning  # inside the caller's write transaction: complete
        if isinstance(action, Create):
            return await service.create_meeting_in(
                tx, plan, action.meeting, now=now, event_id=action.event_id
            )
        if isinstance(action, Change):
            return await service.apply_change_in(tx, plan, action.change, now=now)
        assert isinstance(action, Details)
        return await service.update_details_in(
            tx,
            plan,
            action.meeting_id,
            action.fields,
            now=now,
            source=Source.FEED,
            event_id=action.event_id,
        )

    async def _series_gone(
        self,
        parsed: ParsedFeed,
        produced: set[str],
        seen: dict[str, dict[str, object]],
        *,
        now: datetime,
    ) -> tuple[int, dict[str, str]]:
        """Cancel occurrences a series no longer has (an EXDATE, a shorter RRULE): those
        read before, still ahead and within the horizon, that this read did not produce."""
        applied = 0
        problems: dict[str, str] = {}
        for key, said in list(seen.items()):
            series = said.get("series")
            if key in produced or not isinstance(series, str):
                continue
            horizon_end = parsed.complete_series.get(series)
            original, starts = said.get("original"), said.get("starts_at")
            if horizon_end is None or not isinstance(original, str) or not isinstance(starts, str):
                continue
            ahead = datetime.fromisoformat(starts) > now
            if not ahead or datetime.fromisoformat(original) >= horizon_end:
                continue
            if said.get("status") == MeetingStatus.CANCELLED.value:
                continue
            change = StatusChange(
                meeting_id=meeting_id_for(key),
                status=MeetingStatus.CANCELLED,
                reason="no longer in the series",
                event_id=f"feed_gone_{_hash(self.url, key, str(said.get('sequence')))}",
                source=Source.FEED,
            )
            try:
                result = await service.apply_status_change(self.store, change, now=now)
            except (InvalidChange, Conflict, NotFound) as exc:
                problems[key[:200]] = exc.message
            else:
                applied += 0 if result.duplicate else 1
            seen[key] = {**said, "status": MeetingStatus.CANCELLED.value}
            async with self.store.write() as tx:
                await tx.save_source_items(self.url, {key: seen[key]})
        return applied, problems

    def _log_new(self, problems: dict[str, str], before: dict[str, str]) -> None:
        """Log each skipped or refused event once per reason, not at every poll."""
        known = set(before.values()) if isinstance(before, dict) else set()
        for key, reason in problems.items():
            if key.startswith(_FEED_KEY):
                if reason in known:
                    continue
                log.warning("source %s: %s", self.url, reason, extra={"action": "source_note"})
            elif before.get(key) != reason:
                log.warning(
                    "source %s: event %s: %s",
                    self.url,
                    key,
                    reason,
                    extra={"action": "source_item", "source": self.url},
                )

    async def _record(self, now: datetime, **values: object) -> None:
        """Save a poll that worked at `now`: `values` are the source state it changes."""
        forget = values.pop("forget", None)
        async with self.store.write() as tx:
            if isinstance(forget, list) and forget:
                # Events gone from the feed (or passed) are no longer followed.
                await tx.forget_source_items(self.url, forget)
            await tx.save_source_state(
                self.url,
                self.config.kind,
                last_polled_at=now,
                last_ok_at=now,
                failures=0,
                next_poll_at=None,
                last_error=values.pop("error", None),
                **{
                    k: v
                    for k, v in values.items()
                    if k in ("etag", "last_modified", "counts", "problems")
                },
            )

    async def _failed(self, now: datetime, state: SourceState, error: str) -> PollResult:
        metrics.SOURCE_POLL_ERRORS.labels(self.url).inc()
        failures = state.failures + 1
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


def _label(text: str, limit: int = 200) -> str:
    """An event key or reason as it may be logged and shown: a feed's UID is its author's
    text (an escaped newline in it must not forge a log line)."""
    return clean_text(text)[:limit] or "(blank)"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _summary(problems: dict[str, str], counts: dict[str, int]) -> str | None:
    """The last error as the sources table shows it: counts and the first reason."""
    if not problems:
        return None
    first_key, first = next(iter(problems.items()))
    where = "" if first_key.startswith(_FEED_KEY) else f"{first_key}: "
    skipped, refused = counts.get("skipped", 0), counts.get("refused", 0)
    return f"{skipped} skipped, {refused} refused; {where}{first}"[:2000]
