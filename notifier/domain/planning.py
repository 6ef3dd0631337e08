"""What the service plans deliveries with: the installation's audiences, how many readers
a change plans in its own transaction, and the installation's id.

These are settings, not storage: the store is configured with them when it is opened (and
reads the installation id once), and hands them to the service beside each transaction
(`notifier.service.common.write_with_retry`, `StorePort.planning`); a transaction carries
none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from notifier.domain.audiences import Audiences
from notifier.domain.languages import Languages

#: Readers a change plans in its own transaction; the rest are planned in chunks after.
FANOUT_CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class Planning:
    """The settings every plan of deliveries and reminders is made with."""

    #: The installation's audiences, lowest first.
    audiences: Audiences = field(default_factory=Audiences)
    #: Readers planned per transaction when a change fans out (`[delivery] fanout_chunk`);
    #: 0 plans every reader at once.
    fanout_chunk: int = FANOUT_CHUNK
    #: This installation's id, the first part of every delivery id ("" before it is read).
    installation: str = ""
    #: The languages a meeting's text may be in, the fallback first.
    languages: Languages = field(default_factory=Languages)
