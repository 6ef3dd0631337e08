"""What the application hands its faces beyond domain objects: reports shaped once, so
that the API's schema, ``--json`` and the CLI's table say the same thing."""

from __future__ import annotations

from pydantic import BaseModel


class SourceProblem(BaseModel):
    """One event a feed's last read skipped or refused, and why."""

    event: str
    reason: str


class SourceReport(BaseModel):
    """A watched feed: its health and what its last read followed, skipped and refused."""

    url: str
    kind: str
    every_seconds: float
    last_polled_at: str | None
    last_ok_at: str | None
    next_poll_at: str | None
    failures: int
    followed: int
    skipped: int
    refused: int
    #: Changes (meetings created, moved, updated, cancelled) the last read applied.
    applied: int
    #: ``done/total`` while a large read is applied in chunks; null when finished.
    applying: str | None
    last_error: str | None
    problems: list[SourceProblem]
