"""Modules imported when first used, so that a command starts without what it never needs.

`notifier --version` or `notifier check` should not pay for SQLAlchemy, FastAPI and the
daemon (about a second at start): the CLI names those modules with `module`, which stands
in for the module and imports it on the first attribute read. Type checkers see ordinary
imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Deferred:
    """Stands in for one module until an attribute of it is read."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<deferred module {self._name!r}, {state}>"


def module(name: str) -> Any:
    """A stand-in for the module `name` that imports it on first use."""
    return _Deferred(name)
