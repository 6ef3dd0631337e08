"""Who may call the API, and how often: bearer tokens, Standard Webhooks signatures from
configured upstreams, and a token bucket per caller. Each a small class with its own
tests (tests/unit/test_api_security.py); the app wires them as dependencies.

Every malformed header is a 401 naming the header, never an error of ours.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException

from notifier.channels.webhook import sign
from notifier.web.limits import RateLimit

#: How far a signed push's timestamp may be from our clock, in seconds.
SIGNATURE_TOLERANCE = 300
#: What a `webhook-id` from an upstream may look like (it becomes an idempotency key).
WEBHOOK_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: Seconds since the epoch, ASCII digits only (``str.isdigit`` accepts other scripts).
TIMESTAMP = re.compile(r"[0-9]{1,12}")


def token_name(token: str) -> str:
    """How logs and metrics name a token: a short hash, never the token."""
    return "tok_" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who made a request: a token (by its hash) or a signing upstream."""

    name: str
    #: The upstream's name, for a signed push.
    upstream: str | None = None
    #: The signed push's `webhook-id`: with `upstream`, its one idempotency key.
    webhook_id: str | None = None

    @property
    def event_id(self) -> str | None:
        """The idempotency key of a signed push: upstream and webhook-id, nothing else."""
        if self.upstream is None or self.webhook_id is None:
            return None
        return f"upstream:{self.upstream}:{self.webhook_id}"


class RateLimiter:
    """`rate` requests a minute per caller (`notifier.web.limits.RateLimit`), a refusal
    being the API's 429 with ``Retry-After``."""

    def __init__(self, rate: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.limit = RateLimit(rate, period=60.0, clock=clock)

    def take(self, bucket: str) -> None:
        """Spend one request from `bucket`, or raise 429 with ``Retry-After``."""
        wait = self.limit.take(bucket)
        if wait > 0:
            raise HTTPException(
                429,
                f"more than {self.rate} requests a minute",
                {"Retry-After": str(max(1, round(wait)))},
            )


class BearerAuth:
    """``Authorization: Bearer TOKEN`` with one of the configured tokens, compared in
    constant time; each token spends from its own bucket."""

    def __init__(self, tokens: list[str], limiter: RateLimiter) -> None:
        self.tokens = [t.encode() for t in tokens]
        self.limiter = limiter

    def check(self, authorization: str | None) -> str:
        """The caller's name (a hash of the token), or 401/429."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                401, "send Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"}
            )
        offered = given.strip().encode("utf-8", "surrogateescape")
        matched = [hmac.compare_digest(offered, token) for token in self.tokens]
        if not any(matched):
            raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
        name = token_name(given)
        self.limiter.take(name)
        return name


class SignedPush:
    """A Standard Webhooks signature from a configured upstream (any of its secrets, so
    secrets can rotate); each upstream spends from its own bucket."""

    def __init__(
        self,
        upstreams: list[tuple[str, list[str]]],
        limiter: RateLimiter,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstreams = upstreams
        self.limiter = limiter
        self.clock = clock

    def check(
        self, body: bytes, webhook_id: str | None, timestamp: str | None, signature: str | None
    ) -> Caller:
        """The signing upstream as the caller, or 401/429 naming what is wrong."""
        if not webhook_id or not WEBHOOK_ID.fullmatch(webhook_id):
            raise HTTPException(
                401, "webhook-id is missing or not 1-128 characters of A-Z a-z 0-9 _ . : -"
            )
        if not timestamp or not TIMESTAMP.fullmatch(timestamp):
            raise HTTPException(401, "webhook-timestamp is missing or not a number of seconds")
        if abs(self.clock() - int(timestamp)) > SIGNATURE_TOLERANCE:
            raise HTTPException(401, "webhook-timestamp is more than 5 minutes off")
        if not signature:
            raise HTTPException(401, "webhook-signature is missing")
        offered = [o.encode("utf-8", "surrogateescape") for o in signature.split()[:16]]
        for name, secrets in self.upstreams:
            for secret in secrets:
                expected = sign(secret, webhook_id, int(timestamp), body).encode()
                if any(hmac.compare_digest(expected, o) for o in offered):
                    self.limiter.take(f"upstream:{name}")
                    return Caller(name=f"upstream:{name}", upstream=name, webhook_id=webhook_id)
        raise HTTPException(401, "no valid signature from a configured upstream")
