"""How one delivery attempt ended: what a delivery error says of itself and what the outbox
decides from (`notifier.domain.outbox.after_attempt`)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How one attempt ended."""

    SENT = "sent"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    #: The channel could not send at all (our side); the attempt is not counted.
    PAUSED = "paused"
    #: Not sent: the address is suppressed.
    SUPPRESSED = "suppressed"
