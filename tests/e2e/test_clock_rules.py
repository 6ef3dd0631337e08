"""A zone's clock rules change under a running installation, for real.

Two zoneinfo folders of the test's own, compiled with zic: under the first, "Asia/Almaty"
is UTC+5; under the second (as if Kazakhstan moved its clocks, and a tzdata update came
with it) it is UTC+6. The daemon runs on the first (``PYTHONTZPATH``), stops, and starts
again on the second. Then:

- the wall-anchored meeting stays at its local time, its instant an hour earlier; its
  reminder fires once, at the new instant (the one planned under the old rules is gone);
  every reader gets one ``meeting.updated`` that says so, with a calendar part whose
  SEQUENCE is raised and whose start is the new instant;
- the instant-anchored meeting keeps its instant, and announces its new local time;
- the history, ``/healthz``, the metric and ``notifier tz check`` say what happened, and
  ``notifier tz check --zoneinfo`` said it before the daemon ran on the new rules.

On SQLite and PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar

from tests.helpers.daemon import cli, start_daemon, wait_for
from tests.helpers.environment import environment
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, SmtpServer, free_port

ZONE = "Asia/Almaty"
#: The two rule sets, as tz source: before and after the change.
RULES = {
    "old": "Zone Asia/Almaty 5:07:48 - LMT 1924 May 2\n 5:00 - +05\n",
    "new": "Zone Asia/Almaty 5:07:48 - LMT 1924 May 2\n 5:00 - +05 2020 Jan 1\n 6:00 - +06\n",
}
#: The reminder's offset before the start: its instant under the new rules comes a few
#: seconds after the restart; under the old ones it is an hour later.
OFFSET = timedelta(minutes=5)


def zoneinfo_folder(root: Path, name: str) -> Path:
    """A zoneinfo folder holding only Asia/Almaty under rule set `name` (other zones come
    from the tzdata package, as they would for a zone the system lacks)."""
    folder = root / f"zoneinfo-{name}"
    source = root / f"{name}.zi"
    source.write_text(RULES[name], encoding="ascii")
    subprocess.run(["zic", "-d", str(folder), str(source)], check=True)
    (folder / "+VERSION").write_text(f"test-{name}\n", encoding="ascii")
    return folder


def config(port: int, smtp: SmtpServer, receiver: Receiver, wall: datetime, fixed: datetime) -> str:
    return "\n".join(
        [
            f'listen = "127.0.0.1:{port}"',
            "[smtp]",
            f"port = {smtp.port}",
            'timeout = "2s"',
            "[webhooks]",
            'allow_cidrs = ["127.0.0.1/32"]',
            "[reminders]",
            'sync = "1s"',
            "[[meetings]]",
            'id = "almaty-talks"',
            'title = "Talks in Almaty"',
            f'timezone = "{ZONE}"',
            f'starts_at = "{wall.isoformat()}"',
            'status = "confirmed"',
            "[[meetings]]",
            'id = "utc-call"',
            'title = "Call fixed in UTC"',
            f'timezone = "{ZONE}"',
            f'starts_at = "{fixed.isoformat()}"',
            'status = "confirmed"',
            'anchor = "instant"',
            "[[subscribers]]",
            'id = "desk"',
            f'webhook = {{ url = "{receiver.url("/desk")}", secrets = ["{SECRET}"] }}',
            f'reminders = ["{int(OFFSET.total_seconds())}s"]',
            "[[subscribers]]",
            'id = "mail"',
            'email = "desk@example.org"',
            'timezone = "Europe/Moscow"',
            'events = ["meeting.updated"]',
        ]
    )


@pytest.mark.timeout(120)
async def test_a_rule_change_keeps_the_wall_time_and_moves_the_instant(
    tmp_path: Path, database_url: str
) -> None:
    old, new = zoneinfo_folder(tmp_path, "old"), zoneinfo_folder(tmp_path, "new")
    receiver = await Receiver(secrets=[SECRET]).start()
    smtp = SmtpServer().start()
    port = free_port()
    begin = datetime.now(UTC).replace(microsecond=0)
    # Under the new rules (UTC+6) the wall time reads an hour earlier: its reminder is due
    # 25 s after `begin`; under the old ones (UTC+5), an hour after that.
    new_instant = begin + OFFSET + timedelta(seconds=25)
    wall = (new_instant + timedelta(hours=1)).astimezone(_offset(5))  # written under +05
    fixed = (begin + timedelta(days=2)).astimezone(_offset(5))
    (tmp_path / "notifier.toml").write_text(config(port, smtp, receiver, wall, fixed))
    env = environment(tmp_path, database_url)
    log: list[str] = []
    daemon = None
    try:
        daemon = await start_daemon(env | {"PYTHONTZPATH": str(old)}, tmp_path, log=log)
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait() == 0
        assert receiver.hits == []  # nothing was due: the meeting is an hour away then

        # What the new rules would move, said before the daemon runs on them.
        code, out = await cli(
            env | {"PYTHONTZPATH": str(old)}, tmp_path, "tz", "check", "--zoneinfo", str(new)
        )
        assert code == 2, out
        assert "2 future meetings would move under the rules in" in out
        assert f"almaty-talks (wall): {wall:%Y-%m-%d %H:%M} {ZONE} kept; UTC" in out
        assert f"-> {new_instant:%Y-%m-%d %H:%M} (tzdata test-old -> test-new)" in out
        assert "utc-call (instant):" in out

        daemon = await start_daemon(env | {"PYTHONTZPATH": str(new)}, tmp_path, log=log)
        await wait_for(
            lambda: any(h.verified["type"] == "meeting.reminder" for h in receiver.hits),
            60,
            "the reminder at the new instant",
        )
        reminded = datetime.now(UTC)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = (await client.get("/healthz")).json()
            metrics = (await client.get("/metrics")).text
        await wait_for(lambda: smtp.box.to("desk@example.org"), 20, "the update email")
        code, after = await cli(env | {"PYTHONTZPATH": str(new)}, tmp_path, "tz", "check")
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            assert await daemon.wait() == 0
        await receiver.stop()
        smtp.stop()

    # The reminder came once, at the new instant (not before it).
    reminders = [h for h in receiver.hits if h.verified["type"] == "meeting.reminder"]
    assert len({h.headers["webhook-id"] for h in reminders}) == 1
    assert reminded >= new_instant - OFFSET
    # One update per meeting to each reader, saying what the rules did.
    updates = {
        h.verified["data"]["meeting"]["id"]: h.verified
        for h in receiver.hits
        if h.verified["type"] == "meeting.updated"
    }
    assert len([h for h in receiver.hits if h.verified["type"] == "meeting.updated"]) == 2
    talks = updates["almaty-talks"]["data"]
    assert talks["change"]["clock"]["anchor"] == "wall"
    assert talks["change"]["clock"]["local_before"] == talks["change"]["clock"]["local_after"]
    assert talks["change"]["clock"]["tzdata_after"] == "test-new"
    assert datetime.fromisoformat(talks["meeting"]["starts_at"]) == new_instant
    assert talks["meeting"]["starts_at"].endswith("+06:00")
    assert talks["meeting"]["starts_at"][11:16] == f"{wall:%H:%M}"  # the same wall time
    call = updates["utc-call"]["data"]
    assert call["change"]["clock"]["anchor"] == "instant"
    assert datetime.fromisoformat(call["meeting"]["starts_at"]) == fixed  # the instant stands
    assert call["change"]["clock"]["local_after"][11:16] == f"{fixed + timedelta(hours=1):%H:%M}"
    # The email says it in words, and its calendar part moves the event.
    messages = smtp.box.to("desk@example.org")
    assert len(messages) == 2
    (talks_mail,) = [m for m in messages if "Almaty" in m["Subject"]]
    text = _part(talks_mail, "text/plain")
    assert (
        f"The time-zone rules for {ZONE} have changed: the meeting still starts at "
        f"{wall:%H:%M} local time in {ZONE}, which is now {new_instant:%H:%M} UTC "
        f"(previously {new_instant + timedelta(hours=1):%H:%M} UTC)"
    ) in text.replace("\n", " ")
    # The reader's own zone (Moscow) moved: their time says what it was.
    assert "(was " in text
    ics = _part(talks_mail, "text/calendar")
    calendar = Calendar.from_ical(ics)
    event = calendar.walk("VEVENT")[0]
    assert int(event["sequence"]) == talks["sequence"] >= 1
    # On the zone's clocks, with a VTIMEZONE of the new rules: read through that block (as
    # a calendar that honours it does, whatever its own tzdata says), the new instant.
    assert f"DTSTART;TZID={ZONE}:{wall:%Y%m%dT%H%M%S}" in ics.replace("\r\n", "\n")
    rules = calendar.walk("VTIMEZONE")[0]
    assert rules["TZID"] == ZONE
    (observance,) = rules.walk("STANDARD")  # one offset over the meeting's span: +06
    offset = observance["TZOFFSETTO"].td
    assert offset == timedelta(hours=6)
    assert wall.replace(tzinfo=None) - offset == new_instant.replace(tzinfo=None)
    # The operator sees it: the log, /healthz, the metric, the CLI.
    said = "".join(log)
    assert "time-zone rules of Asia/Almaty changed: almaty-talks (wall):" in said
    assert health["clock_rules"]["moved"] == 2
    assert health["clock_rules"]["tzdata"] == "test-new"
    assert 'notifier_clock_rule_moves_total{anchor="wall"} 1.0' in metrics
    assert 'notifier_clock_rule_moves_total{anchor="instant"} 1.0' in metrics
    assert code == 0, after
    assert "no future meeting is moved by the rules in force here (tzdata test-new)" in after
    code, shown = await cli(
        env | {"PYTHONTZPATH": str(new)}, tmp_path, "meetings", "show", "almaty-talks", "--json"
    )
    assert code == 0, shown
    history = json.loads(shown)["history"]
    assert history[-1]["source"] == "tzdata"
    assert history[-1]["clock"]["zone"] == ZONE


def _offset(hours: int):  # type: ignore[no-untyped-def]
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def _part(message: Message, kind: str) -> str:
    for part in message.walk():
        if part.get_content_type() == kind:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no {kind} part")
