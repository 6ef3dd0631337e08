"""Standard Webhooks signatures, both ways (checklist 1, 2 and 4): one flipped byte of the
id, the timestamp or the body fails; the ±300 s window holds on both sides and at its
boundary; a rotation verifies under either secret while both are listed, and the old one
alone fails once the overlap ends. Outbound headers are checked with the reference
library, inbound ones through the daemon's own `SignedPush`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.exceptions import HTTPException

from notifier.api.security import SIGNATURE_TOLERANCE, RateLimiter, SignedPush
from notifier.channels.webhook import sign, signature_header

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
ID, STAMP, BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def outbound(secrets: list[str], *, msg_id: str = ID, stamp: int = STAMP) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header(secrets, msg_id, stamp, BODY),
    }


def fresh(secrets: list[str]) -> dict[str, str]:
    """Outbound headers signed now (the reference library judges the window by its clock)."""
    return outbound(secrets, stamp=int(datetime.now(UTC).timestamp()))


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the reference library accepts `body` with `headers` under `secret`."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_the_known_answer_verifies_and_one_flipped_byte_anywhere_fails() -> None:
    assert sign(OLD, ID, STAMP, BODY) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    good = fresh([OLD])
    assert verifies(OLD, BODY, good)
    for at in range(len(BODY)):
        assert not verifies(OLD, flipped(BODY, at), good), f"body byte {at}"
    raw_id = ID.encode()
    for at in range(len(raw_id)):
        other = flipped(raw_id, at).decode("latin-1")
        assert not verifies(OLD, BODY, good | {"webhook-id": other}), f"id byte {at}"
    raw_stamp = good["webhook-timestamp"].encode()
    for at in range(len(raw_stamp)):
        other = flipped(raw_stamp, at).decode("latin-1")
        if other.isdigit():  # a non-digit is no timestamp at all: refused before signing
            assert not verifies(OLD, BODY, good | {"webhook-timestamp": other}), f"ts {at}"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def inbound(secrets: list[str], now: float) -> SignedPush:
    return SignedPush([("kremlin", secrets)], RateLimiter(10_000), clock=Clock(now))


def check(push: SignedPush, headers: dict[str, str], body: bytes = BODY) -> bool:
    try:
        push.check(
            body, headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
        )
    except HTTPException as refused:
        if refused.status_code != 401:
            raise
        return False
    return True


def test_an_inbound_push_with_one_flipped_byte_of_id_timestamp_or_body_is_refused() -> None:
    push = inbound([OLD], STAMP)
    good = outbound([OLD])
    assert check(push, good)
    assert not any(check(push, good, flipped(BODY, at)) for at in range(len(BODY)))
    ids = (flipped(ID.encode(), at).decode("latin-1") for at in range(len(ID)))
    assert not any(check(push, good | {"webhook-id": other}) for other in ids)
    stamps = (flipped(str(STAMP).encode(), at).decode("latin-1") for at in range(10))
    assert not any(check(push, good | {"webhook-timestamp": other}) for other in stamps)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (-SIGNATURE_TOLERANCE - 1, False),
        (-SIGNATURE_TOLERANCE, True),
        (0, True),
        (SIGNATURE_TOLERANCE, True),
        (SIGNATURE_TOLERANCE + 1, False),
        (-86_400, False),
        (86_400, False),
    ],
)
def test_the_timestamp_window_is_300_seconds_either_side_boundary_included(
    offset: int, accepted: bool
) -> None:
    """A push signed `offset` seconds from the receiver's clock (negative: in the past)."""
    push = inbound([OLD], STAMP - offset)
    assert check(push, outbound([OLD])) is accepted


def test_a_rotation_verifies_under_either_secret_until_the_overlap_ends() -> None:
    # Outbound: during the overlap both secrets sign, and a receiver holding either verifies.
    both = fresh([OLD, NEW])
    assert len(both["webhook-signature"].split()) == 2
    assert verifies(OLD, BODY, both)
    assert verifies(NEW, BODY, both)
    # The overlap ends (the subscriber lists the new secret alone): the old one fails.
    after = fresh([NEW])
    assert verifies(NEW, BODY, after)
    assert not verifies(OLD, BODY, after)
    # Inbound: an upstream configured with both accepts either; with the new one alone,
    # a push signed by the old secret alone is refused.
    during = inbound([OLD, NEW], STAMP)
    assert check(during, outbound([OLD]))
    assert check(during, outbound([NEW]))
    ended = inbound([NEW], STAMP)
    assert check(ended, outbound([NEW]))
    assert not check(ended, outbound([OLD]))


def test_a_receiver_verifies_the_signature_within_its_tolerance_only() -> None:
    from notifier.channels.webhook import signature_header, verify

    old, new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    body = b'{"type":"meeting.cleared"}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signature_header([old, new], "msg_1", 1700000000, body),
    }
    assert verify([new], headers, body, now=1700000100)  # a rotated-in secret verifies
    assert not verify([new], headers, body + b" ", now=1700000100)
    assert not verify([new], headers, body, now=1700000301)  # past the tolerance
    assert not verify([new], {**headers, "webhook-id": "msg_2"}, body, now=1700000000)
    assert not verify([new], {**headers, "webhook-timestamp": "x"}, body, now=1700000000)
