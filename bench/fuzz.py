"""A million hostile signed pushes against the signature check (checklist 3).

`SignedPush.check`, the code every signed `POST /v1/meetings/{id}/status` goes through
before anything else, is given 1,000,000 inputs made by mutating a valid request: ids,
timestamps, signature headers and bodies with flipped, inserted, deleted and repeated
bytes, other scripts' digits, huge and empty values. Every answer must be a 401 (or the
429 of the rate limit, kept out of the way here) and none may be an exception of any
other kind; a valid request must still pass at the end. The HTTP layer in front of it
(header and body limits, 400s) is fuzzed through the real app by
tests/e2e/test_auth_fuzz.py and tests/integration/test_api_schema.py.

    .venv/bin/python bench/fuzz.py [--inputs 1000000] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from starlette.exceptions import HTTPException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import results  # noqa: E402 -- after the path set-up above
from notifier.api.security import RateLimiter, SignedPush  # noqa: E402
from notifier.channels.webhook import sign  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000
PIECES = ["", " ", "v1,", "v2,", "v1", ",", "=", "\x00", "\r\n", "١٢٣", "9" * 400, "é", "\udcff"]


def mutate(rng: random.Random, value: str) -> str:
    """One random change to `value`."""
    choice = rng.randrange(7)
    if not value or choice == 0:
        return rng.choice(PIECES)
    at = rng.randrange(len(value))
    if choice == 1:  # flip a bit of one character
        return value[:at] + chr((ord(value[at]) ^ (1 << rng.randrange(7))) or 1) + value[at + 1 :]
    if choice == 2:
        return value[:at] + rng.choice(PIECES) + value[at:]
    if choice == 3:
        return value[:at] + value[at + 1 :]
    if choice == 4:
        return value * rng.randrange(2, 50)
    if choice == 5:
        return " ".join([value] * rng.randrange(2, 40))
    return value[:at]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    push = SignedPush([("kremlin", [SECRET])], RateLimiter(10**12), clock=lambda: NOW)
    body = b'{"status": "cleared", "reason": "health clearance"}'
    good = {
        "webhook_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "timestamp": str(NOW),
        "signature": sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", NOW, body),
    }
    answers: dict[int, int] = {}
    accepted = crashes = wrongly = 0
    started = time.perf_counter()
    for n in range(args.inputs):
        given: dict[str, str | None] = dict(good)
        for _ in range(rng.randrange(1, 4)):
            field = rng.choice(["webhook_id", "timestamp", "signature", "body", "none"])
            if field == "none":
                given[rng.choice(["webhook_id", "timestamp", "signature"])] = None
            elif field != "body":
                given[field] = mutate(rng, given[field] or "")
        data = (
            body
            if rng.random() < 0.5
            else mutate(rng, body.decode()).encode("utf-8", "surrogatepass")
        )
        try:
            push.check(data, given["webhook_id"], given["timestamp"], given["signature"])
            accepted += 1
            # Only a request whose id, timestamp and body are the signed ones may pass.
            if (given["webhook_id"], given["timestamp"], data) != (
                good["webhook_id"],
                good["timestamp"],
                body,
            ):
                wrongly += 1
        except HTTPException as refused:
            answers[refused.status_code] = answers.get(refused.status_code, 0) + 1
        except Exception as crash:  # what the check must never do
            crashes += 1
            if crashes <= 5:
                print(f"input {n}: {type(crash).__name__}: {crash}", file=sys.stderr)
    took = time.perf_counter() - started
    push.check(body, good["webhook_id"], good["timestamp"], good["signature"])  # still works
    others = {code: count for code, count in answers.items() if code != 401}
    print(
        f"{args.inputs:,} inputs (seed {args.seed}) in {took:.0f} s: "
        f"401 x {answers.get(401, 0):,}, accepted {accepted:,} (mutations that left a valid "
        f"signature of the signed request in the header), accepted wrongly {wrongly}, "
        f"other answers {others or 'none'}, exceptions {crashes}"
    )
    results.add(
        "fuzz",
        "signed-push inputs answered other than 401 (or accepted as valid)",
        crashes + wrongly + sum(others.values()),
        f"of {args.inputs:,}",
        target="0",
        met=crashes == 0 and wrongly == 0 and not others,
    )


if __name__ == "__main__":
    main()
