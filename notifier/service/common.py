"""What every use case shares: who may change a record, how often a write is retried."""

from __future__ import annotations

from notifier.domain.errors import (
    Conflict,
)
from notifier.domain.models import (
    Source,
)
from notifier.store.engine import is_outage, outage_reason, redact

__all__ = ["check_owner", "is_outage", "outage_reason", "redact"]

#: How often a change is retried when another writer got to the same meeting first.
_ATTEMPTS = 3


def check_owner(what: str, record_id: str, owner: Source, by: Source, verb: str) -> None:
    """A record the config file defines is changed only through the file (`Conflict`)."""
    if owner is Source.FILE and by is not Source.FILE:
        raise Conflict(f"{what} {record_id!r} is defined in the config file; {verb} it there")
