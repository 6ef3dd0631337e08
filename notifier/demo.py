"""`notifier demo`: the seed scenario on one machine, dated from today, with its peers.

It writes ``DIR/demo.toml``: the shipped config with every date of its meetings moved by
whole days so that the talks are next week at the same local time (19:00 in Moscow), the
database ``DIR/demo.db`` (fresh each start unless ``--keep``: that is the reset), and the
mail server and webhook receiver on the ports given. Then it runs the daemon on that file
with an embedded mail catcher and webhook receiver in the same process, which print what
arrives (each email's recipient, subject and text; each webhook's type, meeting and whether
its signature checks). Every other command of the walk reads the same file
(``NOTIFIER_CONFIG=DIR/demo.toml``), so what it changes the daemon sees.

Only loopback addresses are used: the catcher and the receiver listen on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from notifier.settings import Settings

#: The seed's own ports, which the shipped config names.
SEED_SMTP, SEED_HOOKS, SEED_LISTEN = 1025, 9000, "127.0.0.1:8080"
_DATE = re.compile(
    r'^(?P<head>\s*(?:starts_at|ends_at|at)\s*=\s*")(?P<when>[0-9T:+.\-]+)(?P<tail>".*)$'
)


@dataclass(frozen=True)
class Plan:
    """Where the demo puts things and which ports it uses."""

    folder: Path
    listen: str = SEED_LISTEN
    smtp_port: int = SEED_SMTP
    hook_port: int = SEED_HOOKS

    @property
    def config(self) -> Path:
        return self.folder / "demo.toml"

    @property
    def database(self) -> Path:
        return self.folder / "demo.db"


def shift_days(text: str, now: datetime) -> tuple[str, int]:
    """The config `text` with every meeting date moved by the same whole number of days,
    so that the first meeting starts next week (`now` plus 7 days) at its own local time;
    and that number of days."""
    first = next(
        (m for m in map(_DATE.match, text.splitlines()) if m and "starts_at" in m[0]), None
    )
    if first is None:
        return text, 0
    start = datetime.fromisoformat(first["when"])
    zone = _zone_of(text) or start.tzinfo
    target_day = (now.astimezone(zone) + timedelta(days=7)).date()
    days = (target_day - start.astimezone(zone).date()).days
    lines = []
    for line in text.splitlines():
        found = _DATE.match(line)
        if found is not None:
            moved = datetime.fromisoformat(found["when"]) + timedelta(days=days)
            line = f"{found['head']}{moved.isoformat()}{found['tail']}"
        lines.append(line)
    return "\n".join(lines) + "\n", days


def _zone_of(text: str) -> ZoneInfo | None:
    found = re.search(r'^timezone\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return ZoneInfo(found.group(1)) if found else None


def demo_config(text: str, plan: Plan, now: datetime) -> tuple[str, int]:
    """The demo's config file: `text` (the shipped config) dated from `now`, on the demo's
    database and ports; and the days the dates moved by."""
    shifted, days = shift_days(text, now)
    host, _, port = plan.listen.rpartition(":")
    replacements = [
        (r'^database_url\s*=\s*"[^"]*"', f'database_url = "sqlite+aiosqlite:///{plan.database}"'),
        (r'^listen\s*=\s*"[^"]*"', f'listen = "{plan.listen}"'),
        (r'^public_url\s*=\s*"[^"]*"', f'public_url = "http://{host}:{port}"'),
        (rf"^port\s*=\s*{SEED_SMTP}\b", f"port = {plan.smtp_port}"),
    ]
    for pattern, value in replacements:
        shifted = re.sub(pattern, value, shifted, count=1, flags=re.MULTILINE)
    shifted = shifted.replace(f"127.0.0.1:{SEED_HOOKS}/", f"127.0.0.1:{plan.hook_port}/")
    header = (
        f"# Written by `notifier demo` at {now.isoformat(timespec='seconds')} from the shipped "
        f"config, its dates moved by {days} days.\n# Edit config/notifier.toml, not this file: "
        "the next `notifier demo` writes it again.\n"
    )
    return header + shifted, days


def reset(plan: Plan) -> None:
    """Remove the demo's database (and SQLite's side files): the next start is fresh."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{plan.database}{suffix}").unlink(missing_ok=True)


# -- the peers -------------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)


def describe_email(raw: bytes, recipients: list[str]) -> str:
    """What the catcher prints of one email: to whom, the subject, the plain text."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content().strip() if body is not None else "(no text part)"
    rule = "-" * 72
    return f"{rule}\nemail to {', '.join(recipients)}: {message['Subject']}\n{rule}\n{text}\n"


class _Catcher:
    """An aiosmtpd handler that prints every message."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.say(describe_email(envelope.original_content or b"", list(envelope.rcpt_tos)))
        return "250 OK"


def describe_hook(path: str, body: bytes, headers: Any, secrets: list[str]) -> str:
    """What the receiver prints of one request: a chat message, or a webhook's type, meeting
    and status and whether its signature checks against the config's secrets."""
    from notifier.channels.webhook import verify

    try:
        said = json.loads(body)
    except ValueError:
        return f"{path}: {len(body)} bytes, not JSON"
    if path.startswith("/chat"):
        return f"chat {path}: {said.get('title')}\n{said.get('message')}"
    msg_id = headers.get("webhook-id", "")
    valid = verify(secrets, headers, body, now=time.time())
    data = said.get("data", {}) if isinstance(said, dict) else {}
    meeting = data.get("meeting", {}) if isinstance(data, dict) else {}
    verdict = "signature ok" if valid else "SIGNATURE INVALID"
    return (
        f"webhook {path}: {said.get('type')} {meeting.get('id')} -> {meeting.get('status')}"
        f" ({verdict}, id {msg_id})"
    )


@asynccontextmanager
async def peers(
    plan: Plan, secrets: list[str], say: Callable[[str], None] = _say
) -> AsyncIterator[None]:
    """The mail catcher and the webhook receiver, on 127.0.0.1, while the block runs."""
    from aiohttp import web
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(_Catcher(say), hostname="demo.localhost"), "127.0.0.1", plan.smtp_port
    )

    async def receive(request: web.Request) -> web.Response:
        say(describe_hook(request.path, await request.read(), request.headers, secrets))
        return web.Response(status=204)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("POST", "/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", plan.hook_port).start()
    try:
        yield
    finally:
        await runner.cleanup()
        smtp.close()
        await smtp.wait_closed()


def banner(plan: Plan, days: int, starts: str) -> str:
    """The lines the demo starts with: where everything is and what to try."""
    host, _, port = plan.listen.rpartition(":")
    return "\n".join(
        [
            f"notifier demo: the seed scenario, its dates moved {days} days;"
            f" the talks start {starts}.",
            f"  config    {plan.config} (fresh from config/notifier.toml)",
            f"  database  {plan.database}",
            f"  pages     http://{host}:{port}/",
            f"  mail      catcher on 127.0.0.1:{plan.smtp_port} (printed here)",
            f"  webhooks  receiver on 127.0.0.1:{plan.hook_port} (printed here)",
            f"In another terminal: export NOTIFIER_CONFIG={plan.config}",
            "then follow the README's walk (notifier event ...).",
            "Ctrl-C stops; the next start is fresh (--keep keeps the database).",
        ]
    )


def prepare(shipped: Path, plan: Plan, now: datetime, *, keep: bool) -> int:
    """Write the demo's config (and, unless `keep`, forget its database); the days moved."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    text, days = demo_config(shipped.read_text(encoding="utf-8"), plan, now)
    plan.config.write_text(text, encoding="utf-8")
    if not keep:
        reset(plan)
    return days


def secrets_of(settings: Settings) -> list[str]:
    """Every webhook secret of the config's subscribers (what the receiver checks with)."""
    found: list[str] = []
    for subscriber in settings.subscribers:
        if subscriber.webhook is not None:
            found += [secret.get_secret_value() for secret in subscriber.webhook.secrets]
    return found


async def run(settings: Settings, plan: Plan, stop: asyncio.Event | None = None) -> None:
    """The peers, then the daemon on the demo's settings, until SIGTERM or Ctrl-C."""
    from notifier.daemon import run_daemon

    async with peers(plan, secrets_of(settings)):
        await run_daemon(settings, stop=stop)
