"""Logging set-up: human-readable lines by default, one JSON object per line on request."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the `extra=` fields (such as ``action``) kept."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single JSON line."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


#: Standard Webhooks secrets have a shape of their own: hidden wherever they appear.
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=]{8,}")
#: What SQLAlchemy appends to a failed statement's error when parameters are not hidden.
_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.S)
REDACTED = "[redacted]"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every webhook secret, every one of `secrets` and any SQL parameter list
    replaced by ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    text = _WHSEC.sub(REDACTED, text)
    return _PARAMETERS.sub(f"[parameters: {REDACTED}]", text)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then hides secrets in the whole line, traceback included.

    The engine already hides SQL parameters (`hide_parameters`); this is the second line,
    for a secret that reaches a message some other way.
    """

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, redacted."""
        return redact_text(self.inner.format(record), self.secrets)


def configure_logging(
    *, level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()
) -> None:
    """Send notifier's logs to stderr as text lines or JSON lines, secrets hidden."""
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries(root.level)


def quiet_libraries(level: int) -> None:
    """Keep chatty libraries at WARNING or above, whatever notifier's own level.

    APScheduler logs every job run; aiosqlite logs every statement *with its parameters*
    at DEBUG, which would put webhook secrets in the log. Their warnings still show.
    """
    for noisy in ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, level))
