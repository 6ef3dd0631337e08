"""notifier: keeps subscribers informed about meetings whose status changes."""

from __future__ import annotations

__version__ = "0.1.0"
