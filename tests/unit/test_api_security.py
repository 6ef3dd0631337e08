"""The API's gatekeepers on their own: bearer tokens, signed pushes, the rate limiter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from starlette.exceptions import HTTPException

from notifier.api.security import BearerAuth, Caller, RateLimiter, SignedPush, token_name

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refused(call: object, status: int, match: str) -> None:
    with pytest.raises(HTTPException) as raised:
        call()  # type: ignore[operator]
    assert raised.value.status_code == status
    assert match in str(raised.value.detail)


def test_the_rate_limiter_refills_per_bucket_and_says_when_to_come_back() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(HTTPException) as raised:
        limiter.take("a")
    assert raised.value.status_code == 429
    assert raised.value.headers == {"Retry-After": "30"}
    limiter.take("b")  # another caller's bucket is full
    clock.now += 30
    limiter.take("a")


def test_bearer_tokens_are_checked_and_named_by_hash() -> None:
    auth = BearerAuth(["dev-token", "other"], RateLimiter(100))
    assert auth.check("Bearer dev-token") == token_name("dev-token")
    assert auth.check("bearer other") == token_name("other")
    assert "dev-token" not in token_name("dev-token")
    for header, match in [
        (None, "Bearer TOKEN"),
        ("Basic dev-token", "Bearer TOKEN"),
        ("Bearer", "Bearer TOKEN"),
        ("Bearer nope", "unknown token"),
        ("Bearer dev-token\udcff", "unknown token"),
    ]:
        refused(lambda header=header: auth.check(header), 401, match)


def test_a_bearer_token_spends_from_its_own_bucket() -> None:
    auth = BearerAuth(["dev-token"], RateLimiter(1, clock=Clock(0.0)))
    auth.check("Bearer dev-token")
    refused(lambda: auth.check("Bearer dev-token"), 429, "1 requests a minute")


def headers(
    secret: str, body: bytes, *, msg_id: str = "msg_1", at: int = 1_000_000
) -> dict[str, str | None]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, UTC), body.decode())
    return {"webhook_id": msg_id, "timestamp": str(at), "signature": signature}


def test_a_signed_push_names_its_upstream_and_any_secret_of_it_works() -> None:
    push = SignedPush([("kremlin", [OTHER, SECRET])], RateLimiter(100), clock=Clock(1_000_010))
    body = b'{"meeting": "talks", "status": "cleared"}'
    caller = push.check(body, **headers(SECRET, body))
    assert caller == Caller(name="upstream:kremlin", upstream="kremlin", webhook_id="msg_1")
    assert caller.event_id == "upstream:kremlin:msg_1"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"webhook_id": None}, "webhook-id"),
        ({"webhook_id": "a b"}, "webhook-id"),
        ({"webhook_id": "x" * 129}, "webhook-id"),
        ({"timestamp": "١٢٣"}, "webhook-timestamp"),  # digits of another script
        ({"timestamp": "9" * 5000}, "webhook-timestamp"),
        ({"timestamp": "1000400"}, "more than 5 minutes"),
        ({"signature": None}, "webhook-signature"),
        ({"signature": "v1,AAAA"}, "no valid signature"),
    ],
)
def test_every_malformed_or_wrong_header_is_a_401_naming_it(
    change: dict[str, str | None], match: str
) -> None:
    push = SignedPush([("kremlin", [SECRET])], RateLimiter(100), clock=Clock(1_000_010))
    body = b"{}"
    given = headers(SECRET, body) | change
    refused(lambda: push.check(body, **given), 401, match)


def test_a_signature_over_another_body_or_by_another_secret_is_refused() -> None:
    push = SignedPush([("kremlin", [SECRET])], RateLimiter(100), clock=Clock(1_000_010))
    signed = headers(SECRET, b'{"status": "cleared"}')
    refused(lambda: push.check(b'{"status": "cancelled"}', **signed), 401, "no valid")
    stranger = headers(OTHER, b"{}")
    refused(lambda: push.check(b"{}", **stranger), 401, "no valid")
