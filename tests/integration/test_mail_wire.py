"""Hostile text never becomes a header: proven on the bytes a real SMTP server receives.

Every field that reaches a header (or a calendar line) is loaded with every way of ending a
line or smuggling one in an RFC 2047 encoded word, stored as a feed or an old database row
might have it (past the checks at the edges), and sent through the real outbox to aiosmtpd.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import DeliveryStatus
from notifier.store import Store
from tests.helpers.outbox import change, mail, outbox, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import SmtpServer
from tests.wire import (
    HEADERS,
    OPTIONAL,
    assert_clean_wire,
    assert_parses_on,
    decoded_parts,
    ics_lines,
    other_python,
)

MakeWorker = Callable[..., Awaitable[OutboxWorker]]

#: Every way we know of to end a header line, or to have a mail client end one. (NUL is
#: refused at every edge and cannot be stored in PostgreSQL text at all; tests/unit and
#: test_api_hostile cover it.)
HOSTILE = (
    "Talks\r\nBcc: crlf@evil.example"
    "\nX-Injected: lf"
    "\rX-Injected: cr"
    "\x0bvt\x1besc\x7fdel"
    "\u0085X-Injected: nel"
    "\u2028X-Injected: ls\u2029X-Injected: ps"
    " =?UTF-8?Q?=0D=0ABcc:_qword@evil.example?="
    " =?utf-8?b?" + base64.b64encode(b"\r\nBcc: bword@evil.example").decode() + "?="
    " \r\n\r\nbody takeover"
)

FIELDS = ("title", "reason", "location", "conditions", "participants", "description", "name")


@pytest.mark.parametrize("field", FIELDS)
async def test_no_field_can_add_a_header_a_recipient_or_a_body(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    field: str,
    tmp_path: Path,
) -> None:
    meeting: dict[str, object] = {}
    reader: dict[str, object] = {"name": "Desk"}
    if field in ("conditions", "participants"):
        meeting[field] = (HOSTILE, "second")
    elif field == "name":
        reader["name"] = HOSTILE
    elif field != "reason":
        meeting[field] = HOSTILE
    else:
        meeting["reason"] = HOSTILE
    await seed(store, now, mail("desk", "desk@example.org", **reader), **meeting)
    # A change whose own reason is hostile too: what a feed before cleaning would carry.
    await change(store, clock, MeetingStatus.CLEARED, reason="ok")
    worker = await make_worker()
    await run_until_idle(worker)

    assert len(smtp_server.box.raw) == 1
    recipients, raw = smtp_server.box.raw[0]
    assert recipients == ["desk@example.org"]
    headers = assert_clean_wire(raw, recipient="desk@example.org")
    assert "evil.example" not in headers["to"]
    parts = decoded_parts(raw)
    # A description has paragraphs of its own; every other field stays on its line.
    bodies = (parts["text/plain"], parts["text/html"]) if field != "description" else ()
    for text in bodies:
        for line in text.splitlines():
            assert not line.startswith(("Bcc:", "X-Injected:")), line
    calendar = ics_lines(parts["text/calendar"])
    assert all(not line.startswith(("Bcc", "X-Injected", "body")) for line in calendar)
    # The same bytes under Python 3.13's stricter email policy (verify_generated_headers).
    newer = other_python()
    if newer is None:
        if os.environ.get("CI"):
            pytest.fail("no python3.13 on this machine to check the stricter email policy")
        pytest.skip("python3.13 not found: the stricter email policy was not checked")
    (names,) = assert_parses_on(newer, [raw], tmp_path)
    assert [n for n in names.split(",") if n not in OPTIONAL] == sorted(HEADERS)


async def test_the_headers_real_clients_parse_leave_in_their_rfc_form(
    store: Store, clock: Clock, now: datetime, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    await seed(store, now, mail("desk", "desk@example.org", name="Пресс-служба", locale="ru"))
    await change(store, clock, MeetingStatus.CLEARED, reason="справка получена")
    await change(store, clock, MeetingStatus.CANCELLED, reason="called off")
    worker = await make_worker()
    await run_until_idle(worker)

    assert len(smtp_server.box.raw) == 2
    for (_, raw), method in zip(smtp_server.box.raw, ("REQUEST", "CANCEL"), strict=True):
        headers = assert_clean_wire(raw, recipient="desk@example.org")
        head = raw.split(b"\r\n\r\n")[0].decode()
        lines = head.split("\r\n")
        unsubscribe = [line for line in lines if line.startswith("List-Unsubscribe:")]
        assert len(unsubscribe) == 1
        assert unsubscribe[0].startswith("List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe/")
        assert unsubscribe[0].endswith(">")
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
        assert headers["message-id"].startswith("<msg_")
        assert headers["message-id"].endswith("@example.org>")
        assert headers["in-reply-to"] == "<meeting.talks@example.org>"
        assert headers["references"] == "<meeting.talks@example.org>"
        assert headers["from"] == "Notifier <notifier@example.org>"
        assert headers["auto-submitted"] == "auto-generated"
        assert headers["list-id"] == "<meeting.talks.example.org>"
        assert headers["to"].endswith(" <desk@example.org>")
        assert headers["date"].endswith("+0000")
        calendar = ics_lines(decoded_parts(raw)["text/calendar"])
        assert f"METHOD:{method}" in calendar
        attendees = [line for line in calendar if line.startswith("ATTENDEE")]
        assert len(attendees) == 1
        assert attendees[0].endswith(":mailto:desk@example.org")
        assert any(line.startswith("ORGANIZER") for line in calendar)


async def test_a_message_that_cannot_be_built_is_a_permanent_failure(
    store: Store, clock: Clock, now: datetime, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    # Accepted by the address validator, but sendable only with SMTPUTF8.
    await seed(store, now, mail("jose", "josé@example.org"))
    await change(store, clock, MeetingStatus.CLEARED, reason="ok")
    worker = await make_worker()
    await run_until_idle(worker)

    delivery = (await outbox(store))[("jose", "email")]
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.attempts == 1
    assert "SMTPUTF8" in (delivery.last_error or "")
    assert smtp_server.box.raw == []
