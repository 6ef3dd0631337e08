"""The `notifier` command line (Typer). Commands decide nothing: they call the service.

Exit codes: 0 success, 1 a user error (one line naming the file, line or field), 2 a usage
error. Every command takes ``--config PATH`` (default ``config/notifier.toml`` or
``NOTIFIER_CONFIG``); listings take ``--json``. Listing and showing commands open the store
read-only (`_read`: never migrated, reconciled or written); commands that change something
migrate and reconcile first (`_run`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer

from notifier import __version__, lazy
from notifier.clockrules import folder_version, tzdata_version
from notifier.domain.clock import parse_moment
from notifier.domain.durations import format_duration, parse_duration
from notifier.domain.errors import (
    ConfigError,
    NotFound,
    NotifierError,
)
from notifier.domain.languages import freeze_texts
from notifier.domain.models import (
    EventKind,
    HistoryEntry,
    Meeting,
    MeetingStatus,
    Source,
    StatusChange,
    Subscriber,
)
from notifier.domain.outbox import (
    Channel,
    Delivery,
    DeliveryFilter,
    Replay,
)
from notifier.logs import configure_logging, redact_text

# What a command may need, loaded when it does (`notifier --version` in ~0.1 s, not ~1 s).
if TYPE_CHECKING:
    import sqlalchemy.exc as sa_exc

    from notifier import compose, daemon, delivery, leadership, rendering, service, subscriptions
    from notifier import settings as settings_module
    from notifier.settings import Settings
    from notifier.store.port import StorePort
    from notifier.views import SourceReport
else:
    sa_exc = lazy.module("sqlalchemy.exc")
    compose = lazy.module("notifier.compose")
    daemon = lazy.module("notifier.daemon")
    delivery = lazy.module("notifier.delivery")
    leadership = lazy.module("notifier.leadership")
    rendering = lazy.module("notifier.rendering")
    service = lazy.module("notifier.service")
    subscriptions = lazy.module("notifier.subscriptions")
    settings_module = lazy.module("notifier.settings")

T = TypeVar("T")
R = TypeVar("R")

cli = typer.Typer(
    name="notifier",
    help="Keeps subscribers informed about meetings whose status changes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
meetings_cli = typer.Typer(help="List and show meetings.", no_args_is_help=False)
subscribers_cli = typer.Typer(help="List and show subscribers.", no_args_is_help=False)
db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
deliveries_cli = typer.Typer(help="Inspect and replay the outbox.", no_args_is_help=False)
cli.add_typer(meetings_cli, name="meetings")
cli.add_typer(deliveries_cli, name="deliveries")
cli.add_typer(subscribers_cli, name="subscribers")
cli.add_typer(db_cli, name="db")
suppressions_cli = typer.Typer(
    help="Addresses that bounced for good: nothing is sent to them until cleared.",
    no_args_is_help=False,
)
cli.add_typer(suppressions_cli, name="suppressions")
tz_cli = typer.Typer(help="Time zone rules and the meetings they move.", no_args_is_help=True)
cli.add_typer(tz_cli, name="tz")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The TOML config file. [default: config/notifier.toml, or NOTIFIER_CONFIG]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"notifier: error: {message}", err=True)
    return typer.Exit(1)


def _settings(config: Path | None) -> Settings:
    try:
        settings = settings_module.load_settings(config)
    except ConfigError as exc:
        # Several problems are one line each, so every one names its file:line and field.
        *others, last = exc.message.splitlines() or [""]
        for problem in others:
            typer.echo(f"notifier: error: {problem}", err=True)
        raise _fail(last) from None
    # Commands other than `run` log only warnings, but with the same redaction.
    configure_logging(level="warning", fmt=settings.log_format, secrets=settings.secrets())
    return settings


@contextmanager
def _user_errors(settings: Settings) -> Iterator[None]:
    """Turn notifier's own errors and an unreachable database into one line and exit 1."""
    try:
        yield
    except NotifierError as exc:
        raise _fail(exc.message) from None
    except (sa_exc.OperationalError, sa_exc.DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        reason = redact_text(reason, settings.secrets())
        raise _fail(f"database {service.redact(settings.database_url)}: {reason}") from None


def _read(settings: Settings, work: Callable[[compose.App], Awaitable[T]]) -> T:
    """Run `work` on the store as it is (listing and showing): nothing is migrated,
    reconciled or written."""

    async def main() -> T:
        async with compose.open_read_only(settings) as opened:
            return await work(opened)

    with _user_errors(settings):
        return asyncio.run(main())


def _run(settings: Settings, work: Callable[[compose.App], Awaitable[T]]) -> T:
    """Open the app on `settings` (migrating and reconciling), and run `work` in it."""

    async def main() -> T:
        async with compose.open_app(settings) as opened:
            return await work(opened)

    with _user_errors(settings):
        return asyncio.run(main())


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M %Z (%z)") if value else "-"


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def _listing(
    config: Path | None,
    read: Callable[[StorePort], Awaitable[Sequence[R]]],
    *,
    as_json: bool,
    json_of: Callable[[R], object],
    none: str,
    headers: list[str],
    row: Callable[[R], list[str]],
) -> None:
    """The one shape of every listing: read-only, JSON or a table, a line when empty."""
    settings = _settings(config)

    async def work(opened: compose.App) -> list[R]:
        return list(await read(opened.store))

    found = _read(settings, work)
    if as_json:
        _print_json([json_of(r) for r in found])
    elif not found:
        typer.echo(none)
    else:
        _table([row(r) for r in found], headers)


def _lifted(entry: HistoryEntry) -> str:
    """What a clearance lifted, for the history table ("; cleared: health clearance")."""
    if not entry.cleared and "cleared" not in entry.variants:
        return ""
    value = _tiered(entry, "cleared")
    return "; cleared: " + (", ".join(value) if isinstance(value, tuple) else str(value))


def _tiered(record: Meeting | HistoryEntry, field: str) -> object:
    """A tiered field for operators: every variant, by audience, or the plain value."""
    tiers = record.variants.get(field)
    if tiers is None:
        return getattr(record, field)
    return "; ".join(
        f"{audience}: {', '.join(value) if isinstance(value, tuple) else value}"
        for audience, value in tiers.items()
    )


@dataclass(frozen=True)
class _Section:
    """A titled table under a record's fields; shown when it has rows (or `always`)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    always: bool = False


def _show(fields: list[tuple[str, object]], *sections: _Section, width: int = 14) -> None:
    """The shape of every ``show`` command: ``name:  value`` lines (lists joined, nothing
    as ``-``), then each section's table."""
    for name, value in fields:
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        typer.echo(f"{name + ':':<{width}}{'-' if value is None or value == '' else value}")
    for section in sections:
        if section.rows or section.always:
            typer.echo(f"\n{section.title}:")
            _table(section.rows, section.headers)


def _clock(value: str) -> time | None:
    """``21:00`` (or ``9:30``) as a wall-clock time; None for anything else."""
    found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    return time(int(found[1]), int(found[2])) if found else None


def parse_datetime_arg(value: str, *, field: str) -> datetime:
    """An aware datetime from ISO-8601 text, or a `ValueError` naming the option `field`."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field}: not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"{field}: {value!r} has no UTC offset; write e.g. 2026-03-02T19:00:00+03:00"
        )
    return parsed


# -- check, db, run ---------------------------------------------------------------------------


@cli.command()
def check(config: ConfigOption = None) -> None:
    """Validate the config file, settings and templates without touching the database."""
    settings = _settings(config)
    try:
        renderer = rendering.Renderer(settings.templates_dir)
    except ConfigError as exc:
        raise _fail(exc.message) from None
    problems = renderer.check(rendering.sample_notices(compose.utcnow()), now=compose.utcnow())
    for warning in settings.warnings():
        typer.echo(f"notifier: warning: {warning}", err=True)
    if problems:
        for problem in problems:
            typer.echo(f"notifier: error: template {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{settings.config_path}: OK: {_count(settings.meetings, 'meeting')}, "
        f"{_count(settings.subscribers, 'subscriber')}, {_count(settings.sources, 'source')}; "
        f"database {service.redact(settings.database_url)}; "
        f"tzdata {tzdata_version() or 'of unknown version'}"
    )


@tz_cli.command("check")
def tz_check(
    config: ConfigOption = None,
    zoneinfo: Annotated[
        Path | None,
        typer.Option(
            "--zoneinfo",
            help="A zoneinfo folder (a newer tzdata, compiled, before it is installed): "
            "list what its rules would move. Without it: what the rules in force here "
            "moved that the daemon has not yet acted on.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """List the future meetings a change of clock rules moves: wall-anchored ones keep
    their local time at a new instant, instant-anchored ones keep their instant at a new
    local time. Exits 0 when none would move, 2 when some would."""
    settings = _settings(config)
    now = compose.utcnow()

    async def work(opened: compose.App) -> list[service.ClockMove]:
        if zoneinfo is None:
            return await service.clock_drift(opened.store, now=now)
        return await service.rules_preview(opened.store, zoneinfo, now=now)

    try:
        moves = _run(settings, work)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if zoneinfo is not None:
        rules = f"the rules in {zoneinfo} (tzdata {folder_version(zoneinfo) or 'version unknown'})"
        if not moves:
            typer.echo(f"no future meeting would move under {rules}")
            return
        typer.echo(f"{_count(moves, 'future meeting')} would move under {rules}:")
    else:
        rules = f"the rules in force here (tzdata {tzdata_version() or 'version unknown'})"
        if not moves:
            typer.echo(f"no future meeting is moved by {rules} and not yet updated")
            return
        typer.echo(f"{_count(moves, 'future meeting')} moved by {rules}, not yet updated:")
    for move in moves:
        typer.echo(f"  {move.describe()}")
    if zoneinfo is None:
        typer.echo("the daemon updates these at its next start or daily check")
    raise typer.Exit(2)


@db_cli.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the database schema to the latest revision."""
    settings = _settings(config)

    async def work(opened: compose.App) -> str | None:
        return await service.schema_revision(opened.store)

    revision = _run(settings, work)
    where = service.redact(settings.database_url)
    typer.echo(f"database {where} is at revision {revision} (latest)")


@cli.command("dkim")
def dkim_record(config: ConfigOption = None) -> None:
    """Print the DNS TXT record that publishes the DKIM key of [smtp.dkim]."""
    settings = _settings(config)
    if settings.smtp.dkim is None:
        raise _fail(
            "DKIM signing is off: set [smtp.dkim] domain, selector and key_file "
            "(README, Email authentication)"
        )
    typer.echo(settings.smtp.dkim.signer().dns_record())


@db_cli.command("installation")
def db_installation(
    config: ConfigOption = None,
    new: Annotated[
        bool,
        typer.Option(
            "--new",
            help="Make a new installation id: for a copy of a backup that runs beside the "
            "original (staging), so the two never send the same message ids.",
        ),
    ] = False,
) -> None:
    """Print this database's installation id, part of every webhook-id and Message-ID."""
    settings = _settings(config)

    async def work(opened: compose.App) -> str:
        return await service.installation(opened.store, renew=new)

    installation = _run(settings, work)
    said = "is now" if new else "is"
    where = service.redact(settings.database_url)
    typer.echo(f"the installation id of {where} {said} {installation}")


@cli.command()
def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help="Where the demo's config and database go.")
    ] = Path("var"),
    listen: Annotated[str, typer.Option(help="The daemon's address.")] = "127.0.0.1:8080",
    smtp_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The mail catcher's port on 127.0.0.1.")
    ] = 1025,
    webhook_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The webhook receiver's port on 127.0.0.1.")
    ] = 9000,
    keep: Annotated[
        bool, typer.Option(help="Keep the demo's database from last time (default: fresh).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Try the seed scenario: the daemon on a fresh DIR/demo.db with the talks next week,
    and a mail catcher and webhook receiver that print what arrives. Stop with Ctrl-C."""
    from notifier import demo as demo_module
    from notifier.words import moment

    shipped = config or Path(os.environ.get("NOTIFIER_CONFIG") or "config/notifier.toml")
    if not shipped.is_file():
        raise _fail(f"{shipped}: no such file (set --config)")
    plan = demo_module.Plan(folder, listen=listen, smtp_port=smtp_port, hook_port=webhook_port)
    now = compose.utcnow()
    days = demo_module.prepare(shipped, plan, now, keep=keep)
    settings = _settings(plan.config)
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())
    first = settings.meetings[0] if settings.meetings else None
    when = "" if first is None else moment(first.starts_at, first.timezone, "en")
    typer.echo(demo_module.banner(plan, days, when))
    with _user_errors(settings):
        daemon.freeze_loaded()
        asyncio.run(demo_module.run(settings, plan))


@cli.command()
def run(config: ConfigOption = None) -> None:
    """Run the daemon until SIGTERM or Ctrl-C."""
    settings = _settings(config)
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())
    with _user_errors(settings):
        daemon.freeze_loaded()
        asyncio.run(daemon.run_daemon(settings))


@cli.command()
def health(
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 4.0,
) -> None:
    """Ask the running daemon's /healthz at the configured `listen` address (the container's
    HEALTHCHECK): exit 0 when it answers 200, else 1 saying what happened."""
    settings = _settings(config)
    url = settings.local_url("/healthz")
    # No proxy: a proxy from the environment would answer for a daemon it cannot see.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _fail(f"{url}: {reason}") from None
    if status != 200:
        raise _fail(f"{url} answered {status}")
    typer.echo(f"{url}: ok")


# -- event ------------------------------------------------------------------------------------


@cli.command()
def event(
    meeting: Annotated[str, typer.Argument(help="The meeting id.")],
    status: Annotated[MeetingStatus, typer.Argument(help="The new status.")],
    reason: Annotated[str, typer.Option(help="Why the status changed.")] = "",
    reason_for: Annotated[
        list[str] | None,
        typer.Option(
            "--reason-for",
            metavar="[LANG:]AUDIENCE=TEXT",
            help="The reason as one audience reads it (repeat; then --reason is unused); "
            "with LANG: (ru:participants=...), as it reads in that language.",
        ),
    ] = None,
    reason_in: Annotated[
        list[str] | None,
        typer.Option(
            "--reason-in",
            metavar="LANG=TEXT",
            help="The reason in another language than the fallback, as every audience reads "
            "it there (repeat for each language).",
        ),
    ] = None,
    starts_at: Annotated[
        str | None,
        typer.Option(
            "--starts-at",
            help="New start (needed to reschedule): the meeting's local time "
            "(2026-12-10T19:00), with an offset (2026-12-10T19:00+03:00), RFC 9557 "
            "(2026-12-10T19:00+03:00[Europe/Moscow]), or HH:MM on the meeting's day.",
        ),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option(
            "--fold",
            min=0,
            max=1,
            help="Which reading of a local time the clocks pass twice: 0 the first, 1 the "
            "second (only needed then).",
        ),
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option("--condition", help="A pending condition (repeat for several)."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Allow a transition the state machine refuses.")
    ] = False,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Your id for this change; a repeat is a no-op.")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Change a meeting's status (works while the daemon runs on the same database)."""
    settings = _settings(config)
    # A time alone ("21:00") is that time on the meeting's current day in its own zone.
    clock = _clock(starts_at) if starts_at else None
    try:
        new_start = parse_moment(starts_at, fold=fold) if starts_at and clock is None else None
    except ValueError as exc:
        raise _fail(f"--starts-at: {exc}") from None
    variants: dict[str, dict[str, str]] = {}
    texts: dict[str, dict[str, Any]] = {}
    for given in reason_in or []:
        lang, sep, text = given.partition("=")
        if not sep or not lang.strip():
            raise _fail(f"--reason-in: {given!r} is not LANG=TEXT")
        texts.setdefault(lang.strip(), {})["reason"] = text
    if reason_for:
        for given in reason_for:
            head, sep, text = given.partition("=")
            lang, colon, audience = head.rpartition(":")
            if not sep or not audience.strip() or (colon and not lang.strip()):
                raise _fail(f"--reason-for: {given!r} is not [LANG:]AUDIENCE=TEXT")
            if lang:
                layer = texts.setdefault(lang.strip(), {})
                if isinstance(layer.get("reason"), str):
                    raise _fail(f"give --reason-in or --reason-for for {lang.strip()}, not both")
                layer.setdefault("reason", {})[audience.strip()] = text
                continue
            if reason:
                raise _fail("give --reason or --reason-for, not both")
            variants.setdefault("reason", {})[audience.strip()] = text
    change = StatusChange(
        meeting_id=meeting,
        status=status,
        reason=reason,
        starts_local=new_start,
        conditions=tuple(condition) if condition else None,
        event_id=event_id,
        force=force,
        source=Source.CLI,
        variants=variants,
        texts=freeze_texts(texts),
    )

    async def work(opened: compose.App) -> service.ChangeResult:
        nonlocal change
        if clock is not None:
            moved = await service.on_its_day(opened.store, meeting, clock)
            change = dataclasses.replace(change, starts_at=moved)
        return await service.apply_status_change(opened.store, change, now=compose.utcnow())

    result = _run(settings, work)
    if as_json:
        _print_json(
            {
                "meeting": result.meeting.to_dict(),
                "change": result.entry.to_dict(),
                "duplicate": result.duplicate,
            }
        )
        return
    entry = result.entry
    note = " (already applied: nothing changed)" if result.duplicate else ""
    moved = f", starts {_when(result.meeting.starts_at)}" if entry.previous_starts_at else ""
    typer.echo(
        f"{meeting}: {entry.from_status.value if entry.from_status else '-'} -> "
        f"{entry.to_status.value} (sequence {entry.sequence}){moved}{note}"
    )


# -- meetings ---------------------------------------------------------------------------------


def _meetings_list(config: Path | None, as_json: bool, include_retired: bool) -> None:
    _listing(
        config,
        lambda store: service.list_meetings(store, include_retired=include_retired),
        as_json=as_json,
        json_of=lambda r: {**r.meeting.to_dict(), "retired": r.retired_at is not None},
        none="no meetings",
        headers=["ID", "STATUS", "STARTS", "SEQ", "TITLE"],
        row=lambda r: [
            r.meeting.id + (" (retired)" if r.retired_at else ""),
            r.meeting.status.value,
            _when(r.meeting.starts_at),
            str(r.meeting.sequence),
            r.meeting.title,
        ],
    )


@meetings_cli.callback(invoke_without_command=True)
def meetings_default(
    ctx: typer.Context,
    as_json: JsonOption = False,
    include_retired: Annotated[
        bool, typer.Option("--all", help="Include retired meetings.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List meetings (the default) or show one."""
    if ctx.invoked_subcommand is None:
        _meetings_list(config, as_json, include_retired)


@meetings_cli.command("list")
def meetings_list(
    as_json: JsonOption = False,
    include_retired: Annotated[
        bool, typer.Option("--all", help="Include retired meetings.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List meetings, soonest first."""
    _meetings_list(config, as_json, include_retired)


@meetings_cli.command("show")
def meetings_show(
    meeting_id: Annotated[str, typer.Argument(metavar="ID", help="The meeting id.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one meeting and its full history."""
    settings = _settings(config)

    detail = _read(settings, lambda opened: service.meeting_detail(opened.store, meeting_id))
    meeting, zone = detail.meeting, ZoneInfo(detail.meeting.timezone)
    if as_json:
        _print_json(
            {
                "meeting": {**meeting.to_dict(), "retired": detail.retired},
                "history": [entry.to_dict() for entry in detail.history],
                "reminders": [
                    {
                        "subscriber": r.subscriber_id,
                        "offset": format_duration(r.offset),
                        "due_at": r.due_at.astimezone(zone).isoformat(),
                        "sequence": r.sequence,
                        "state": r.state,
                        "late": r.late,
                    }
                    for r in detail.reminders
                ],
            }
        )
        return
    retired = " (retired: no longer in the config file)" if detail.retired else ""
    reason = _tiered(meeting, "reason")
    _show(
        [
            ("id", meeting.id + retired),
            ("title", meeting.title),
            ("status", meeting.status.value + (f" ({reason})" if reason else "")),
            ("starts", _when(meeting.starts_at)),
            ("ends", _when(meeting.ends_at)),
            ("location", _tiered(meeting, "location")),
            ("participants", _tiered(meeting, "participants")),
            ("conditions", _tiered(meeting, "conditions")),
            ("audience", f"{meeting.audience} and above"),
            ("tags", meeting.tags),
            ("sequence", meeting.sequence),
            ("source", meeting.source.value),
        ],
        _Section(
            "history",
            ["SEQ", "AT", "KIND", "STATUS", "REASON", "SOURCE"],
            [
                [
                    str(e.sequence),
                    e.at.strftime("%Y-%m-%d %H:%M %Z"),
                    e.kind.value,
                    f"{e.from_status.value if e.from_status else '-'} -> {e.to_status.value}",
                    (f"moved from {_when(e.previous_starts_at)}; " if e.previous_starts_at else "")
                    + str(_tiered(e, "reason"))
                    + _lifted(e),
                    e.source.value + (" (forced)" if e.forced else ""),
                ]
                for e in detail.history
            ],
            always=True,
        ),
        _Section(
            "reminders",
            ["SUBSCRIBER", "BEFORE", "DUE", "STATE"],
            [
                [
                    r.subscriber_id,
                    format_duration(r.offset),
                    _when(r.due_at.astimezone(zone)),
                    r.state + (" (late)" if r.late else ""),
                ]
                for r in detail.reminders
            ],
        ),
    )


# -- subscribers ------------------------------------------------------------------------------


def _channels(subscriber: Subscriber) -> str:
    named = [c for c, on in (("email", subscriber.email), ("webhook", subscriber.webhook)) if on]
    if subscriber.notify:
        named.append(f"notify x{len(subscriber.notify)}")
    return ", ".join(named)


def _came_by(subscriber: Subscriber) -> str:
    """How a subscriber came: the file, the API, or self-service (and whether confirmed)."""
    if subscriber.source is Source.PUBLIC:
        return "self-service" + ("" if subscriber.confirmed else " (unconfirmed)")
    return subscriber.source.value


def _subscribers_list(config: Path | None, as_json: bool, include_retired: bool) -> None:
    _listing(
        config,
        lambda store: service.list_subscribers(store, include_retired=include_retired),
        as_json=as_json,
        json_of=lambda r: r.subscriber.to_dict(),
        none="no subscribers",
        headers=["ID", "CHANNELS", "TIMEZONE", "LOCALE", "REMINDERS", "AUDIENCE", "CAME BY"],
        row=lambda r: [
            r.subscriber.id + (" (retired)" if r.retired_at else ""),
            _channels(r.subscriber),
            r.subscriber.timezone,
            r.subscriber.locale,
            " ".join(format_duration(d) for d in r.subscriber.reminders) or "-",
            r.subscriber.audience,
            _came_by(r.subscriber),
        ],
    )


@subscribers_cli.callback(invoke_without_command=True)
def subscribers_default(
    ctx: typer.Context,
    as_json: JsonOption = False,
    include_retired: Annotated[
        bool, typer.Option("--all", help="Include retired subscribers.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List subscribers (the default) or show one."""
    if ctx.invoked_subcommand is None:
        _subscribers_list(config, as_json, include_retired)


@subscribers_cli.command("list")
def subscribers_list(
    as_json: JsonOption = False,
    include_retired: Annotated[
        bool, typer.Option("--all", help="Include retired subscribers.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List subscribers by id."""
    _subscribers_list(config, as_json, include_retired)


@subscribers_cli.command("rotate-links")
def subscribers_rotate_links(
    subscriber_id: Annotated[str, typer.Argument(metavar="ID")],
    config: ConfigOption = None,
) -> None:
    """Make new manage and private calendar links for a subscriber (the old ones stop)."""
    settings = _settings(config)

    async def work(opened: compose.App) -> None:
        await service.subscriber_detail(opened.store, subscriber_id, retired_too=False)
        await subscriptions.rotate(opened.store, subscriber_id)

    _run(settings, work)
    typer.echo(f"{subscriber_id}: new manage and calendar links; the old ones no longer work")


@subscribers_cli.command("enable")
def subscribers_enable(
    subscriber_id: Annotated[str, typer.Argument(metavar="ID")],
    channel: Annotated[Channel, typer.Option(help="Which endpoint.")] = Channel.WEBHOOK,
    config: ConfigOption = None,
) -> None:
    """Use a disabled endpoint again (after it failed for days, answered 410, or the reader
    unsubscribed and asked to come back)."""
    settings = _settings(config)

    async def work(opened: compose.App) -> None:
        await service.enable_endpoint(opened.store, subscriber_id, channel)

    _run(settings, work)
    typer.echo(f"{subscriber_id}: {channel.value} enabled again")


@subscribers_cli.command("show")
def subscribers_show(
    subscriber_id: Annotated[str, typer.Argument(metavar="ID", help="The subscriber id.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one subscriber (secrets are never shown)."""
    settings = _settings(config)

    subscriber = _read(
        settings,
        lambda opened: service.subscriber_detail(opened.store, subscriber_id, retired_too=True),
    )
    data = subscriber.to_dict()
    if as_json:
        _print_json(data)
        return
    webhook = subscriber.webhook
    if webhook is not None:
        data["webhook"] = f"{webhook.url} ({len(webhook.secrets)} signing secret(s))"
    _show(list(data.items()))


# -- deliveries -------------------------------------------------------------------------------

StatusOption = Annotated[
    DeliveryFilter | None,
    typer.Option("--status", help="Only deliveries in this state."),
]


def _deliveries_list(
    config: Path | None, status: DeliveryFilter | None, limit: int, as_json: bool
) -> None:
    _listing(
        config,
        lambda store: service.list_deliveries(store, status=status, limit=limit),
        as_json=as_json,
        json_of=delivery.describe,
        none="no deliveries" + (f" {status.value}" if status else ""),
        headers=["ID", "STATUS", "CHANNEL", "SUBSCRIBER", "KIND", "TRIES", "LAST ERROR"],
        row=lambda d: [
            d.id,
            d.status.value,
            d.channel.value,
            d.subscriber_id,
            d.kind.value,
            str(d.attempts),
            (d.last_error or "")[:60],
        ],
    )


@deliveries_cli.callback(invoke_without_command=True)
def deliveries_default(
    ctx: typer.Context,
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List deliveries (the default), show one, or retry one."""
    if ctx.invoked_subcommand is None:
        _deliveries_list(config, status, limit, as_json)


@deliveries_cli.command("list")
def deliveries_list(
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List deliveries, newest first."""
    _deliveries_list(config, status, limit, as_json)


@deliveries_cli.command("show")
def deliveries_show(
    delivery_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOption = False,
    render: Annotated[
        bool,
        typer.Option(
            "--render", help="Print the email exactly as it was sent (the bytes on the wire)."
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show one delivery and every attempt at it."""
    settings = _settings(config)
    if render:
        sent = _read(settings, lambda opened: service.sent_message(opened.store, delivery_id))
        sys.stdout.buffer.write(sent)
        sys.stdout.buffer.flush()
        return

    detail = _read(settings, lambda opened: service.delivery_detail(opened.store, delivery_id))
    data = delivery.describe(detail.delivery)
    if as_json:
        _print_json({**data, "attempts_log": detail.attempts})
        return
    _show(
        list(data.items()),
        _Section(
            "attempts",
            ["AT", "OUTCOME", "CODE", "TOOK", "ERROR"],
            [
                [
                    str(a["at"]),
                    str(a["outcome"]),
                    str(a["code"] or "-"),
                    f"{a['duration_ms']} ms",
                    str(a["error"] or ""),
                ]
                for a in detail.attempts
            ],
            always=True,
        ),
        width=17,
    )


@deliveries_cli.command("retry")
def deliveries_retry(
    delivery_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="One delivery; or select with --status.")
    ] = None,
    status: Annotated[
        DeliveryFilter | None,
        typer.Option(help="Replay every delivery in this state (dead, failed, retrying)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only those created since: ISO-8601 with offset, or a duration ago."),
    ] = None,
    subscriber: Annotated[str | None, typer.Option(help="Only this subscriber's.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be replayed; change nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Send dead or waiting deliveries again, now, with a fresh set of attempts.

    One by ID, or in bulk with --status (and --since, --subscriber); the running daemon
    picks them up.
    """
    settings = _settings(config)
    if (delivery_id is None) == (status is None):
        raise _fail("give a delivery ID or --status (not both)")
    if delivery_id is None:
        assert status is not None
        now = compose.utcnow()
        selection = Replay(
            status=status,
            since=_since(since, now=now) if since else None,
            subscriber_id=subscriber,
        )

        async def bulk(opened: compose.App) -> list[str]:
            return await service.replay(opened.store, selection, now=now, dry_run=dry_run)

        ids = _run(settings, bulk)
        verb = "would replay" if dry_run else "replayed"
        typer.echo(f"{verb} {_count(ids, 'delivery')}".replace("deliverys", "deliveries"))
        return

    async def work(opened: compose.App) -> Delivery:
        return await service.retry_delivery(opened.store, delivery_id, now=compose.utcnow())

    retried = _run(settings, work)
    typer.echo(f"{retried.id}: {retried.status.value}, due now with a fresh set of attempts")


def _since(value: str, *, now: datetime) -> datetime:
    """An ISO-8601 instant, or a duration back from `now` (``24h``)."""
    try:
        return now - parse_duration(value)
    except ValueError:
        return parse_datetime_arg(value, field="--since")


# -- suppressions -----------------------------------------------------------------------------


def _suppressions_list(config: Path | None, as_json: bool) -> None:
    _listing(
        config,
        service.list_suppressions,
        as_json=as_json,
        json_of=lambda found: found.to_dict(),
        none="no suppressed addresses",
        headers=["ADDRESS", "SINCE", "REASON"],
        row=lambda found: [
            found.address,
            found.since.isoformat()[:19],
            rendering.one_line(found.reason, limit=80),
        ],
    )


@suppressions_cli.callback(invoke_without_command=True)
def suppressions_default(
    ctx: typer.Context, as_json: JsonOption = False, config: ConfigOption = None
) -> None:
    """List suppressed addresses (the default), or clear one."""
    if ctx.invoked_subcommand is None:
        _suppressions_list(config, as_json)


@suppressions_cli.command("list")
def suppressions_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List suppressed addresses, newest first."""
    _suppressions_list(config, as_json)


@suppressions_cli.command("clear")
def suppressions_clear(
    address: Annotated[str, typer.Argument(help="The address to send to again.")],
    config: ConfigOption = None,
) -> None:
    """Take an address off the suppression list (replay its deliveries to resend them)."""
    settings = _settings(config)

    async def work(opened: compose.App) -> bool:
        try:
            await service.clear_suppression(opened.store, address)
        except NotFound:
            return False
        return True

    if not _run(settings, work):
        raise _fail(f"{address} is not suppressed")
    typer.echo(f"{address} cleared; `notifier deliveries retry --status suppressed` resends")


# -- leader -----------------------------------------------------------------------------------


@cli.command()
def leader(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Show which replica holds the scheduler lease (runs reminders and feed polls)."""
    settings = _settings(config)

    async def work(opened: compose.App) -> dict[str, Any] | None:
        found = await service.leader(
            opened.store, lease_name=leadership.SCHEDULER, now=compose.utcnow()
        )
        return found.to_dict() if found is not None else None

    found = _read(settings, work)
    if as_json:
        _print_json(found)
        return
    if found is None:
        typer.echo("no replica has led the scheduler yet")
    elif found["live"]:
        typer.echo(
            f"term {found['term']}: {found['holder']} leads (lease until {found['expires_at']})"
        )
    else:
        typer.echo(
            f"term {found['term']}: {found['holder']} led until {found['expires_at']}; "
            "the next replica to renew takes over"
        )


# -- sources ----------------------------------------------------------------------------------


@cli.command()
def sources(
    as_json: JsonOption = False,
    problems: Annotated[
        int, typer.Option("--problems", min=0, max=2000, help="Reasons shown per source.")
    ] = 5,
    config: ConfigOption = None,
) -> None:
    """Show each watched feed: health, events followed, skipped and refused, and why."""
    settings = _settings(config)

    async def work(opened: compose.App) -> list[SourceReport]:
        return await service.source_report(opened.store, list(settings.sources), problems=problems)

    report = _read(settings, work)
    if as_json:
        _print_json([row.model_dump() for row in report])
        return
    if not report:
        typer.echo("no sources configured ([[sources]] in the config file)")
        return
    for row in report:
        if row.last_polled_at is None:
            health = "never polled"
        elif row.failures:
            health = f"failing ({row.failures} in a row, next try {row.next_poll_at})"
        else:
            health = f"ok at {row.last_ok_at}"
        typer.echo(f"{row.url} ({row.kind}): {health}")
        if row.last_polled_at is None:
            continue
        line = (
            f"  {row.followed} followed, {row.skipped} skipped, {row.refused} refused; "
            f"{row.applied} changes applied by the last read"
        )
        if row.applying:
            line += f" (applying {row.applying})"
        typer.echo(line)
        if row.last_error:
            typer.echo(f"  last error: {rendering.one_line(row.last_error, limit=200)}")
        for problem in row.problems:
            event = rendering.one_line(problem.event, limit=80)
            typer.echo(f"  - {event}: {rendering.one_line(problem.reason, limit=160)}")


# -- render -----------------------------------------------------------------------------------


@cli.command()
def render(
    kind: Annotated[EventKind, typer.Argument(help="The event kind, e.g. meeting.rescheduled.")],
    meeting_id: Annotated[str, typer.Option("--meeting", help="The meeting id.")],
    subscriber_id: Annotated[str, typer.Option("--subscriber", help="The subscriber id.")],
    channel: Annotated[
        Channel | None,
        typer.Option(help="email, webhook or notify [default: the subscriber's first]"),
    ] = None,
    part: Annotated[
        str | None,
        typer.Option(help="Print only subject, text or html of an email, decoded."),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(help="Render as a reader of this audience would get it [default: theirs]."),
    ] = None,
    entry: Annotated[
        int | None,
        typer.Option(
            "--entry",
            min=0,
            metavar="N",
            help="The change (its sequence in `meetings show`) [default: the latest of KIND].",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the message a subscriber got for KIND about a meeting: the latest change of
    that kind (or --entry N) as their audience was sent it. A line on stderr says when it
    is rebuilt or hypothetical instead (no such change yet, or nothing stored)."""
    settings = _settings(config)
    if part not in (None, "subject", "text", "html"):
        raise _fail("--part is subject, text or html")

    async def work(opened: compose.App) -> service.Preview:
        async with compose.open_postman(settings, opened.store) as postman:
            return await service.preview(
                opened.store,
                postman,
                kind,
                meeting_id,
                subscriber_id,
                channel=channel,
                part=part,
                now=compose.utcnow(),
                audience=audience,
                entry=entry,
            )

    shown = _read(settings, work)
    if shown.note:
        typer.echo(f"notifier: note: {shown.note}", err=True)
    typer.echo(shown.text.rstrip("\n"))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"notifier {__version__}")
        raise typer.Exit()


@cli.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Keeps subscribers informed about meetings whose status changes."""


def main() -> None:
    """Entry point of the `notifier` console script."""
    cli(prog_name="notifier")
    sys.exit(0)
