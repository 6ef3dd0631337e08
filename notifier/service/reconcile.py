"""The config file made true in the store: its meetings and subscribers created, updated
or retired, with one report line for the log."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from notifier.configfile import MeetingConfig, texts_of
from notifier.domain.audiences import (
    CHANGE_TIERED,
    split,
)
from notifier.domain.errors import (
    ConfigError,
    InvalidChange,
)
from notifier.domain.languages import CHANGE_FIELDS
from notifier.domain.machine import apply_change, update_details
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    Source,
    StatusChange,
    kind_of_status,
)
from notifier.domain.planning import Planning
from notifier.locate import format_loc
from notifier.service.changes import ChangeResult, _creation, _write, retire_meeting_in
from notifier.service.reminders import replan_all
from notifier.settings import Settings
from notifier.store.port import StorePort, TransactionPort

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


@dataclass(kw_only=True)
class ReconcileReport:
    """What one reconciliation of the config file did."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    changes: list[ChangeResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.retired or self.changes)

    def summary(self, *, named: int = 10) -> str:
        """One line for the log: what was created, updated, retired (the first `named` of
        each by name, then how many more: a file of 10,000 readers is one short line)."""

        def listed(ids: list[str]) -> str:
            more = len(ids) - named
            shown = ", ".join(ids[:named])
            return f"{shown} and {more:,} more ({len(ids):,} in all)" if more > 0 else shown

        parts = [
            f"{name} {listed(ids)}"
            for name, ids in (
                ("created", self.created),
                ("updated", self.updated),
                ("retired", self.retired),
            )
            if ids
        ]
        return "; ".join(parts) or "nothing to do"


def file_state(config: MeetingConfig) -> str:
    """The status part of a file meeting, to notice when the file's author changes it."""
    return json.dumps(
        {
            "status": config.status.value,
            "reason": config.reason,
            "starts_at": config.starts_at.isoformat(),
            "conditions": config.conditions,
            # Only when given, so that files without texts keep the state they had.
            **(
                {
                    "texts": {
                        lang: layer.model_dump(include={"reason", "conditions"}, exclude_none=True)
                        for lang, layer in config.texts.items()
                    }
                }
                if config.texts
                else {}
            ),
        },
        sort_keys=True,
    )


def _at(message: str, loc: tuple[str | int, ...]) -> ConfigError:
    """A config-file error at `loc`; the caller, which knows the file, cites its line."""
    return ConfigError(message, field=format_loc(loc), loc=loc)


async def reconcile(store: StorePort, settings: Settings, *, now: datetime) -> ReconcileReport:
    """Make the store agree with the meetings and subscribers of the config file.

    In one transaction: file records are created, updated, or retired when the file no
    longer names them (history is kept; a named-again record comes back). A meeting's
    status or time in the file is applied, through the state machine, only when the
    file's author edited it since the last reconciliation, so changes made since through
    the CLI or API stand. Records created through the API are never touched; a file
    record with the same id is a `ConfigError`. On any error nothing changes.
    """
    report = ReconcileReport()
    async with store.write() as tx:
        plan = store.planning
        await tx.serialize("reconcile")
        for index, config in enumerate(settings.meetings):
            await _reconcile_meeting(tx, plan, config, index, report, now=now)
        named = {m.id for m in settings.meetings}
        for record in await tx.meeting_records():
            meeting = record.meeting
            if meeting.source is Source.FILE and meeting.id not in named:
                await retire_meeting_in(tx, meeting, now=now)
                report.retired.append(f"meeting {meeting.id}")

        # One read of the stored subscribers the file names; only those the file changes
        # are written, so a file of thousands that did not change costs two queries, not
        # thousands, and readers who came another way (100,000 by self-service) are not
        # read at all.
        stored = {
            r.subscriber.id: r
            for r in await tx.subscriber_records(
                include_retired=True, ids=[s.id for s in settings.subscribers]
            )
        }
        for index, subscriber_config in enumerate(settings.subscribers):
            subscriber = subscriber_config.to_domain(source=Source.FILE)
            existing = stored.get(subscriber.id)
            if existing is not None and existing.subscriber.source is not Source.FILE:
                raise _at(
                    f"subscriber {subscriber.id!r} was created through the "
                    f"{existing.subscriber.source.value}; the config file cannot take it over",
                    ("subscribers", index, "id"),
                )
            if existing is not None and existing.subscriber == subscriber:
                continue
            if await tx.save_subscriber(subscriber, now=now):
                label = f"subscriber {subscriber.id}"
                (report.created if existing is None else report.updated).append(label)
        named = {s.id for s in settings.subscribers}
        for subscriber_record in await tx.subscriber_records(source=Source.FILE):
            subscriber = subscriber_record.subscriber
            if subscriber.id not in named:
                await tx.retire_subscriber(subscriber.id, now=now)
                report.retired.append(f"subscriber {subscriber.id}")
        if report.created or report.updated or report.retired:
            # Who is subscribed, or to what, may have changed: every plan is redone.
            await replan_all(tx, plan, now=now)
    if report:
        log.info("config reconciled: %s", report.summary(), extra={"action": "reconcile"})
    return report


async def _reconcile_meeting(
    tx: TransactionPort,
    plan: Planning,
    config: MeetingConfig,
    index: int,
    report: ReconcileReport,
    *,
    now: datetime,
) -> None:
    wanted = config.to_domain(source=Source.FILE)
    state = file_state(config)
    record = await tx.meeting_record(config.id, for_update=True)
    if record is None:
        await tx.insert_meeting(wanted, now=now, file_state=state)
        for entry in _initial_history(config, wanted, now=now):
            await tx.append_history(entry)
        report.created.append(f"meeting {config.id}")
        return
    current = record.meeting
    if current.source is not Source.FILE:
        raise _at(
            f"meeting {config.id!r} was created through the {current.source.value}; "
            "the config file cannot take it over",
            ("meetings", index, "id"),
        )
    touched = False
    details = update_details(
        current,
        {
            "title": wanted.title,
            "description": _as_given(wanted, "description"),
            "location": _as_given(wanted, "location"),
            "participants": _as_given(wanted, "participants"),
            "timezone": wanted.timezone,
            "tags": wanted.tags,
            "audience": wanted.audience,
            "texts": {
                lang: {k: v for k, v in layer.items() if k not in CHANGE_FIELDS}
                for lang, layer in wanted.texts.items()
            },
        },
        now=now,
        source=Source.FILE,
    )
    if details is not None:
        await _write(tx, plan, current, details, now=now)
        current = details.meeting
        touched = True
    if record.file_state != state:
        if (
            wanted.status is not current.status
            or wanted.starts_at != current.starts_at
            or _as_given(wanted, "reason") != _as_given(current, "reason")
            or _change_texts(wanted) != _change_texts(current)
        ):
            change = StatusChange(
                meeting_id=current.id,
                status=wanted.status,
                reason=wanted.reason,
                starts_at=wanted.starts_at if wanted.starts_at != current.starts_at else None,
                conditions=wanted.conditions,
                source=Source.FILE,
                variants={k: v for k, v in wanted.variants.items() if k in CHANGE_TIERED},
                texts={
                    lang: {k: v for k, v in layer.items() if k in CHANGE_FIELDS}
                    for lang, layer in wanted.texts.items()
                    if any(k in CHANGE_FIELDS for k in layer)
                },
            )
            try:
                transition = apply_change(current, change, now=now)
            except InvalidChange as exc:
                raise _at(exc.message, ("meetings", index, "status")) from None
            queued = await _write(tx, plan, current, transition, now=now)
            report.changes.append(
                ChangeResult(meeting=transition.meeting, entry=transition.entry, deliveries=queued)
            )
        await tx.set_meeting_bookkeeping(current.id, file_state=state)
        touched = True
    if record.retired_at is not None:
        await tx.set_meeting_bookkeeping(current.id, retired_at=None)
        touched = True
    if current.require_languages != wanted.require_languages:
        await tx.set_meeting_bookkeeping(
            current.id, require_languages=list(wanted.require_languages) or None
        )
        touched = True
    if current.anchor is not wanted.anchor:
        # What the time is fixed to from now on; the time itself does not move.
        await tx.set_meeting_bookkeeping(current.id, anchor=wanted.anchor.value)
        touched = True
    if current.coalesce != wanted.coalesce:
        window = wanted.coalesce
        await tx.set_meeting_bookkeeping(
            current.id, coalesce_seconds=int(window.total_seconds()) if window else None
        )
        touched = True
    if touched:
        report.updated.append(f"meeting {config.id}")


def _as_given(meeting: Meeting, name: str) -> object:
    """A tiered field as written: its variants, or its plain value."""
    return meeting.variants.get(name) or getattr(meeting, name)


def _change_texts(meeting: Meeting) -> dict[str, dict[str, object]]:
    return {
        lang: {k: v for k, v in layer.items() if k == "reason"}
        for lang, layer in meeting.texts.items()
        if "reason" in layer
    }


def _initial_history(
    config: MeetingConfig, meeting: Meeting, *, now: datetime
) -> list[HistoryEntry]:
    if not config.history:
        return [_creation(meeting, at=now, source=Source.FILE)]
    entries = []
    status = None
    for sequence, item in enumerate(config.history):
        to_status = item.status or status
        assert to_status is not None  # MeetingConfig checks the first entry has a status
        reason, tiers = split("reason", item.reason)
        assert isinstance(reason, str)
        entries.append(
            HistoryEntry(
                meeting_id=meeting.id,
                sequence=sequence,
                at=item.at,
                kind=kind_of_status(to_status) if item.status else EventKind.UPDATED,
                from_status=status,
                to_status=to_status,
                reason=reason,
                starts_at=meeting.starts_at,
                source=Source.FILE,
                variants={"reason": tiers} if tiers is not None else {},
                texts=texts_of(item.texts),
            )
        )
        status = to_status
    return entries
