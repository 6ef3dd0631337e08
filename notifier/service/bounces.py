"""Bounces that arrive later: a DSN's token checked, its delivery found, the address
suppressed (hard) or the bounce counted (soft)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from notifier.domain.outbox import (
    Channel,
)
from notifier.dsn import Failure, Report, Unreadable
from notifier.store.port import StorePort
from notifier.tokens import bounce_token_delivery, bounce_token_valid

# One logger for the package, named as the module was: log lines read as they did.
log = logging.getLogger("notifier.service")


@dataclass(frozen=True, kw_only=True)
class BounceResult:
    """What one DSN did to one delivery."""

    #: ``hard`` (suppressed, delivery dead), ``soft`` (counted), ``repeat`` (this DSN was
    #: recorded before) or ``refused`` (forged, unknown or unreadable: nothing changed).
    outcome: str
    reason: str
    delivery_id: str | None = None
    address: str | None = None
    #: Soft bounces recorded for the delivery so far (this one included).
    soft_bounces: int = 0


_SMTP_CODE = re.compile(r"^\s*([245]\d\d)[\s-]")


def _bounce_text(failure: Failure, report: Report, *, now: datetime) -> tuple[str, int | None]:
    """``bounced later: 5.1.1 user unknown (DSN from mx.example.org at ...)``, and the
    SMTP code the remote server gave, if it gave one."""
    words = failure.diagnostic
    match = _SMTP_CODE.match(words)
    code = int(match.group(1)) if match else None
    if match:
        words = words[match.end() :].strip()
    if failure.status:
        words = words.removeprefix(failure.status).strip()
    when = (report.dated or now).isoformat()
    lead = "bounced later" if failure.permanent else "delayed later"
    said = " ".join(part for part in (failure.status, words) if part) or "no reason given"
    return f"{lead}: {said} (DSN from {report.reporting_mta} at {when})", code


def _refused(reason: str, *, delivery_id: str | None = None) -> BounceResult:
    log.warning(
        "DSN ignored: %s",
        reason,
        extra={"action": "bounce_refused", "delivery": delivery_id},
    )
    return BounceResult(outcome="refused", reason=reason, delivery_id=delivery_id)


async def record_bounce(
    store: StorePort,
    report: Report | Unreadable,
    *,
    token: str | None,
    key: str,
    now: datetime,
) -> BounceResult:
    """Apply a DSN that arrived at the return path of `token` (None: at the bare bounce
    address). The token must name a delivery that exists and be signed with `key` for an
    address the DSN says failed; anything else changes nothing and is logged once, with
    the reason. A hard bounce suppresses the address and marks the delivery dead with
    what the DSN said; a soft one (4.x.x, or a delay) is counted against the delivery and
    suppresses nothing, however many come. The same DSN twice counts once."""
    if token is None:
        return _refused("no return-path token in the recipient")
    delivery_id = bounce_token_delivery(token)
    if delivery_id is None:
        return _refused("malformed return-path token")
    if isinstance(report, Unreadable):
        return _refused(f"unreadable DSN: {report.reason}", delivery_id=delivery_id)
    if not report.failures:
        return _refused(
            "no failed recipient recognised (not a delivery status notification?)",
            delivery_id=delivery_id,
        )
    async with store.write() as tx:
        delivery = await tx.delivery(delivery_id)
        if delivery is None or delivery.channel is not Channel.EMAIL:
            return _refused(f"unknown delivery {delivery_id}", delivery_id=delivery_id)
        failure = next(
            (f for f in report.failures if bounce_token_valid(key, token, f.address)), None
        )
        if failure is None:
            current = await tx.endpoint_address(delivery.subscriber_id, Channel.EMAIL)
            named = ", ".join(f.address for f in report.failures[:3])
            if current is not None and bounce_token_valid(key, token, current):
                return _refused(
                    f"token for another address: the DSN names {named}, delivery "
                    f"{delivery_id} went elsewhere",
                    delivery_id=delivery_id,
                )
            return _refused(
                f"bad signature: the token is not signed for {named}", delivery_id=delivery_id
            )
        text, code = _bounce_text(failure, report, now=now)
        added = await tx.add_bounce(
            delivery_id,
            dsn_id=report.dsn_id,
            address=failure.address,
            permanent=failure.permanent,
            status=failure.status,
            reporting_mta=report.reporting_mta,
            at=now,
            code=code,
            error=text,
        )
        if not added:
            return BounceResult(
                outcome="repeat",
                reason="this DSN was recorded before",
                delivery_id=delivery_id,
                address=failure.address,
            )
        if failure.permanent:
            await tx.suppress(failure.address, reason=text, now=now)
            await tx.mark_bounced(delivery_id, error=text)
            soft = 0
        else:
            soft = await tx.soft_bounces(delivery_id)
    log.info(
        "delivery %s %s",
        delivery_id,
        text,
        extra={
            "action": "bounce_hard" if failure.permanent else "bounce_soft",
            "delivery": delivery_id,
            "status": failure.status,
        },
    )
    return BounceResult(
        outcome="hard" if failure.permanent else "soft",
        reason=text,
        delivery_id=delivery_id,
        address=failure.address,
        soft_bounces=soft,
    )
