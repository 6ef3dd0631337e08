"""Every error notifier raises on purpose, in one flat tree.

Callers catch at the level they need::

    NotifierError                 the root: a user-facing problem, never a bug
    ├── ConfigError               the config file, settings or a value in them is invalid
    ├── NotFound                  an id names nothing
    │   ├── UnknownMeeting
    │   └── UnknownSubscriber
    ├── Conflict                  an id is taken, or owned by another source
    ├── InvalidChange             a status change that cannot be applied
    │   └── TransitionError       the state machine refuses from -> to
    ├── NotLeader                 this replica no longer holds the scheduler lease
    └── DeliveryError             a notification could not be delivered
        ├── TemporaryDeliveryError    retry later (honouring Retry-After)
        └── PermanentDeliveryError    dead-letter; `gone` disables the endpoint

The CLI turns a `NotifierError` into a one-line message and exit code 1; the API into a
4xx problem response. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import ClassVar

from notifier.domain.outcomes import Outcome


class NotifierError(Exception):
    """Something notifier was asked to do cannot be done."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The one-line, user-facing text of this error."""
        return str(self.args[0]) if self.args else ""


class ConfigError(NotifierError):
    """The configuration is invalid."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        loc: tuple[str | int, ...] | None = None,
    ) -> None:
        self.reason = message
        self.path = path
        self.line = line
        self.field = field
        #: Where in the config file's structure, e.g. ``("meetings", 0, "status")``.
        self.loc = loc
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        what = f"{field}: " if field else ""
        super().__init__(f"{where}{what}{message}")

    def located(self, path: str, line: int | None) -> ConfigError:
        """The same error, at `path` and `line` of the file."""
        return ConfigError(self.reason, path=path, line=line, field=self.field, loc=self.loc)


class NotFound(NotifierError):
    """No such record."""


class Withdrawn(NotFound):
    """The record was published once and has been withdrawn (HTTP 410 Gone)."""


class UnknownMeeting(NotFound):
    """No such meeting."""

    def __init__(self, meeting_id: str) -> None:
        self.meeting_id = meeting_id
        super().__init__(f"unknown meeting {meeting_id!r}")


class UnknownSubscriber(NotFound):
    """No such subscriber."""

    def __init__(self, subscriber_id: str) -> None:
        self.subscriber_id = subscriber_id
        super().__init__(f"unknown subscriber {subscriber_id!r}")


class UnknownDelivery(NotFound):
    """No such delivery."""

    def __init__(self, delivery_id: str) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"unknown delivery {delivery_id[:100]!r}")


class Conflict(NotifierError):
    """The record conflicts with one that already exists."""


class InvalidChange(NotifierError):
    """The status change cannot be applied."""


class TransitionError(InvalidChange):
    """The state machine does not allow this transition."""

    def __init__(
        self, meeting_id: str, from_status: str, to_status: str, allowed: list[str]
    ) -> None:
        self.meeting_id = meeting_id
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = allowed
        options = ", ".join(allowed) if allowed else "none: it is final"
        super().__init__(
            f"meeting {meeting_id!r} cannot go from {from_status} to {to_status} "
            f"(allowed from {from_status}: {options}; force overrides)"
        )


class NotLeader(NotifierError):
    """This replica does not hold the scheduler lease (another replica took over).

    Raised inside a leader-only transaction whose fencing term is no longer current, so
    that nothing it would have written is committed.
    """


class DeliveryError(NotifierError):
    """A notification could not be delivered.

    Channels raise one of the two subclasses; the outbox worker decides from it whether to
    retry (`TemporaryDeliveryError`) or dead-letter (`PermanentDeliveryError`)::

        DeliveryError
        ├── TemporaryDeliveryError   5xx, 408, 429, timeouts, refused connections, SMTP 4xx
        │   ├── DeliveryTimeout      the peer did not answer in time
        │   └── ChannelUnavailable   our side cannot send (SMTP auth, sender, relay down):
        │                            the channel pauses, attempts are not used up
        ├── PermanentDeliveryError   other 3xx/4xx, SMTP 5xx, refused targets; 410 = gone,
        │                            5xx to RCPT = bounce (the address is suppressed)
        └── SuppressedAddress        the address bounced before: not sent
    """

    #: What the outbox makes of it (`notifier.domain.outbox.after_attempt`).
    outcome: ClassVar[Outcome] = Outcome.PERMANENT
    #: Seconds the receiver asked us to wait (Retry-After), if it said.
    retry_after: float | None = None
    #: The endpoint said it no longer exists (HTTP 410): stop using it.
    gone: bool = False
    #: The mail server refused the recipient address for good (5xx to RCPT).
    bounce: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    """The delivery failed but may succeed later."""

    outcome = Outcome.TEMPORARY

    def __init__(
        self, message: str, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code=code)


class DeliveryTimeout(TemporaryDeliveryError):
    """The peer did not answer within the channel's timeout (it may be hanging): the worker
    sends nothing more to that endpoint in the same batch."""


class ChannelUnavailable(TemporaryDeliveryError):
    """The channel cannot send at all, through our fault (credentials, sender, relay down or
    refusing TLS): not the recipient's. The delivery waits for the channel without using up
    its attempts, so a broken relay never dead-letters the queue."""

    outcome = Outcome.PAUSED


class PermanentDeliveryError(DeliveryError):
    """The delivery will never succeed as it is."""

    def __init__(
        self, message: str, *, code: int | None = None, gone: bool = False, bounce: bool = False
    ) -> None:
        self.gone = gone
        self.bounce = bounce
        super().__init__(message, code=code)


class SuppressedAddress(DeliveryError):
    """The address is on the suppression list (it bounced): the message is not sent."""

    outcome = Outcome.SUPPRESSED
