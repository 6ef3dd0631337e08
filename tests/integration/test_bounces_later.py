"""Bounces that arrive later: each email goes out with its own signed return path (VERP),
the DSNs that come back to it over SMTP are read (Postfix, Exim, Gmail, Exchange shapes),
a hard bounce suppresses the address and marks the delivery, a soft one is counted, and
a DSN without a valid token changes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from notifier.bounces import BounceListener
from notifier.delivery import OutboxWorker
from notifier.domain.models import MeetingStatus
from notifier.domain.outbox import Delivery, DeliveryStatus
from notifier.store import Store
from notifier.tokens import bounce_token, bounce_token_valid, return_path, token_of_return_path
from tests.helpers.api import AUTH
from tests.helpers.outbox import change, mail, outbox, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import SmtpServer
from tests.integration.test_faces import run_cli

MakeWorker = Callable[..., Awaitable[OutboxWorker]]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dsn"
BOUNCES = "bounces@example.org"
#: The key `make_worker`'s postman signs with.
KEY = "test-key"
VERP = re.compile(r"bounces\+[a-z2-7]{42}@example\.org")

HARD = {
    "postfix-hard.eml": ("5.1.1", "mx.example.org"),
    "exim-hard.eml": ("5.1.1", "smtp.example.net"),
    "gmail-hard.eml": ("5.1.1", "googlemail.com"),
    "exchange-hard.eml": ("5.1.10", "am0pr04mb6484.eurprd04.prod.outlook.com"),
}
SOFT = {
    "postfix-delayed.eml": "4.4.1",
    "exchange-delayed.eml": "4.4.7",
}


@dataclasses.dataclass(frozen=True)
class Sent:
    """One email as it went out: its delivery, envelope sender and Message-ID."""

    delivery: Delivery
    address: str
    sender: str
    message_id: str


@pytest.fixture
async def listener(store: Store, clock: Clock) -> AsyncIterator[BounceListener]:
    bounces = BounceListener(
        store,
        listen="127.0.0.1:0",
        bounce_address=BOUNCES,
        key=KEY,
        clock=clock,
        hostname="bounces.test",
    )
    await bounces.start()
    try:
        yield bounces
    finally:
        await bounces.stop()


async def send_mail(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    *addresses: str,
) -> dict[str, Sent]:
    """Send the talks' clearance to one reader per address with VERP on; what went out."""
    await seed(store, now, *(mail(f"r{n}", a) for n, a in enumerate(addresses)))
    worker = await make_worker()
    worker.postman = dataclasses.replace(worker.postman, bounce_address=BOUNCES)
    await change(store, clock, MeetingStatus.CLEARED)
    await run_until_idle(worker)
    stored = await outbox(store)
    sent = {}
    for n, address in enumerate(addresses):
        [message] = smtp_server.box.to(address)
        index = next(i for i, (rcpts, _) in enumerate(smtp_server.box.raw) if address in rcpts)
        sent[address] = Sent(
            delivery=stored[(f"r{n}", "email")],
            address=address,
            sender=smtp_server.box.senders[index],
            message_id=str(message["Message-ID"]),
        )
    return sent


def dsn(name: str, sent: Sent, *, recipient: str | None = None) -> bytes:
    """The fixture `name` as a DSN for `sent` (naming `recipient` as failed, if given)."""
    text = (FIXTURES / name).read_text()
    text = text.replace("{{RETURN_PATH}}", sent.sender)
    text = text.replace("{{RECIPIENT}}", recipient or sent.address)
    text = text.replace("{{MESSAGE_ID}}", sent.message_id)
    return text.replace("\n", "\r\n").encode()


async def deliver(listener: BounceListener, message: bytes, to: str) -> None:
    """Hand `message` to the listener as an MTA hands a DSN over: null sender, over SMTP."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port, timeout=10) as client:
        await client.sendmail("", [to], message)


async def attempts(store: Store, delivery_id: str) -> list[dict[str, object]]:
    async with store.read() as tx:
        return await tx.attempts(delivery_id)


async def test_each_email_has_its_own_signed_return_path_in_mail_from(
    store: Store, clock: Clock, now: datetime, smtp_server: SmtpServer, make_worker: MakeWorker
) -> None:
    sent = await send_mail(
        store, clock, now, smtp_server, make_worker, "a@example.org", "B@Example.org"
    )
    senders = {s.sender for s in sent.values()}
    assert len(senders) == 2, "one return path per delivery"
    for one in sent.values():
        assert VERP.fullmatch(one.sender), one.sender
        assert len(one.sender.partition("@")[0]) <= 64
        token = token_of_return_path(BOUNCES, one.sender)
        assert token is not None
        assert bounce_token_valid(KEY, token, one.address)
        assert not bounce_token_valid(KEY, token, "someone.else@example.org")
        assert one.sender == return_path(BOUNCES, bounce_token(KEY, one.delivery.id, one.address))
    for _, raw in smtp_server.box.raw:
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nreturn-path:" not in b"\r\n" + headers.lower(), "the receiving MTA adds it"

    plain = await make_worker()  # [bounces] address unset: the envelope sender as before
    await change(store, clock, MeetingStatus.POSTPONED, reason="again")
    await run_until_idle(plain)
    assert smtp_server.box.senders[2:] == ["notifier@example.org"] * 2


@pytest.mark.parametrize("shape", sorted(HARD))
async def test_a_hard_bounce_that_arrives_later_suppresses_and_marks_the_delivery(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    listener: BounceListener,
    shape: str,
) -> None:
    sent = await send_mail(
        store, clock, now, smtp_server, make_worker, "gone@example.org", "ok@example.org"
    )
    gone = sent["gone@example.org"]
    assert gone.delivery.status is DeliveryStatus.SENT
    clock.advance(timedelta(minutes=7))
    # An MTA may fold the return path's case; the token reads the same.
    await deliver(listener, dsn(shape, gone), gone.sender.upper())

    status, mta = HARD[shape]
    async with store.read() as tx:
        assert await tx.suppressed(["gone@example.org", "ok@example.org"]) == {"gone@example.org"}
        [suppression] = await tx.suppressions()
        delivery = await tx.delivery(gone.delivery.id)
        untouched = await tx.delivery(sent["ok@example.org"].delivery.id)
    assert f"DSN from {mta}" in suppression.reason
    assert delivery is not None
    assert untouched is not None
    assert delivery.status is DeliveryStatus.DEAD
    assert (delivery.last_error or "").startswith(f"bounced later: {status} "), delivery.last_error
    assert f"(DSN from {mta} at " in (delivery.last_error or "")
    assert untouched.status is DeliveryStatus.SENT
    log = await attempts(store, gone.delivery.id)
    assert [a["outcome"] for a in log] == ["sent", "permanent"]
    assert log[-1]["error"] == delivery.last_error
    assert delivery.attempts == 1, "a bounce is not one more attempt"

    # The same DSN again (the MTA retried its DATA): recorded once.
    await deliver(listener, dsn(shape, gone), gone.sender)
    assert len(await attempts(store, gone.delivery.id)) == 2


async def test_deliveries_show_and_the_api_tell_that_it_bounced_later(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    listener: BounceListener,
    database_url: str,
    api: httpx.AsyncClient,
) -> None:
    sent = await send_mail(store, clock, now, smtp_server, make_worker, "gone@example.org")
    gone = sent["gone@example.org"]
    await deliver(listener, dsn("postfix-hard.eml", gone), gone.sender)
    code, shown = await asyncio.to_thread(
        run_cli, database_url, "deliveries", "show", gone.delivery.id
    )
    assert code == 0, shown
    assert "bounced later: 5.1.1 <gone@example.org>: Recipient address rejected" in shown
    assert "DSN from mx.example.org at 2026-12-02T18:40:12+00:00" in shown
    listed = await api.get("/v1/deliveries", params={"status": "dead"}, headers=AUTH)
    [dead] = [d for d in listed.json() if d["id"] == gone.delivery.id]
    assert dead["last_error"].startswith("bounced later: 5.1.1")


@pytest.mark.parametrize("shape", sorted(SOFT))
async def test_a_soft_bounce_is_counted_against_the_delivery_and_suppresses_nothing(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    listener: BounceListener,
    shape: str,
) -> None:
    sent = await send_mail(store, clock, now, smtp_server, make_worker, "slow@example.org")
    slow = sent["slow@example.org"]
    await deliver(listener, dsn(shape, slow), slow.sender)
    await deliver(listener, dsn(shape, slow), slow.sender)  # the same DSN twice: once
    async with store.read() as tx:
        assert await tx.suppressed(["slow@example.org"]) == set()
        assert await tx.soft_bounces(slow.delivery.id) == 1
        delivery = await tx.delivery(slow.delivery.id)
    assert delivery is not None
    assert delivery.status is DeliveryStatus.SENT
    log = await attempts(store, slow.delivery.id)
    assert [a["outcome"] for a in log] == ["sent", "temporary"]
    assert str(log[-1]["error"]).startswith(f"delayed later: {SOFT[shape]} ")

    # Another delay notice (another Message-ID) counts again, and still suppresses nothing.
    again = re.sub(rb"(?i)\r\nMessage-Id:", b"\r\nX-Old-Message-Id:", dsn(shape, slow))
    await deliver(listener, again, slow.sender)
    async with store.read() as tx:
        assert await tx.soft_bounces(slow.delivery.id) == 2
        assert await tx.suppressed(["slow@example.org"]) == set()


async def test_a_dsn_without_a_valid_token_changes_nothing_and_is_logged_once(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    listener: BounceListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = await send_mail(
        store, clock, now, smtp_server, make_worker, "gone@example.org", "other@example.org"
    )
    gone = sent["gone@example.org"]
    token = token_of_return_path(BOUNCES, gone.sender)
    assert token is not None
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    unknown = bounce_token(KEY, "msg_" + "0" * 32, "gone@example.org")
    foreign = bounce_token("another-installation", gone.delivery.id, "gone@example.org")
    assert unknown is not None
    assert foreign is not None
    forged = {
        "bad signature": (return_path(BOUNCES, flipped), None),
        "unknown delivery": (return_path(BOUNCES, unknown), None),
        "token for another address": (gone.sender, "other@example.org"),
        "signed with another key": (return_path(BOUNCES, foreign), None),
    }
    caplog.set_level(logging.INFO, logger="notifier")
    for what, (to, names) in forged.items():
        caplog.clear()
        await deliver(listener, dsn("postfix-hard.eml", gone, recipient=names), to)
        refusals = [r for r in caplog.records if getattr(r, "action", "") == "bounce_refused"]
        assert len(refusals) == 1, (what, caplog.text)
        expected = "bad signature" if what == "signed with another key" else what
        assert expected in refusals[0].getMessage(), (what, refusals[0].getMessage())

    for to in (BOUNCES, "postmaster@example.org", "bounces+nottoken@example.org"):
        caplog.clear()
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await deliver(listener, dsn("postfix-hard.eml", gone), to)
        assert refused.value.recipients[0].code == 550
        assert len([r for r in caplog.records if "refused recipient" in r.getMessage()]) == 1

    async with store.read() as tx:
        assert await tx.suppressions() == []
        for one in sent.values():
            found = await tx.delivery(one.delivery.id)
            assert found is not None
            assert found.status is DeliveryStatus.SENT
            assert len(await tx.attempts(one.delivery.id)) == 1
            assert await tx.soft_bounces(one.delivery.id) == 0


async def test_a_dsn_over_1_mib_is_refused_and_hostile_ones_change_nothing(
    store: Store,
    clock: Clock,
    now: datetime,
    smtp_server: SmtpServer,
    make_worker: MakeWorker,
    listener: BounceListener,
) -> None:
    sent = await send_mail(store, clock, now, smtp_server, make_worker, "gone@example.org")
    gone = sent["gone@example.org"]
    padding = b"X-Padding: " + b"x" * 900 + b"\r\n"
    huge = padding * 1200 + dsn("postfix-hard.eml", gone)
    assert len(huge) > 1024 * 1024
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await deliver(listener, huge, gone.sender)
    assert refused.value.code == 552

    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(3000)
    )
    hostile = [
        (b"\x00\xff" * 200 + b"\r\n") * 50,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\r\n\r\n--",
        nested,
        b"Subject: out of office\r\n\r\nI am away until Monday.\r\n",
    ]
    for message in hostile:
        await deliver(listener, message, gone.sender)
    async with store.read() as tx:
        found = await tx.delivery(gone.delivery.id)
        assert await tx.suppressions() == []
    assert found is not None
    assert found.status is DeliveryStatus.SENT
    assert [a["outcome"] for a in await attempts(store, gone.delivery.id)] == ["sent"]
