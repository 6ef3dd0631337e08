"""Where in the config file a value is written: the 1-based line of a location such as
``("meetings", 0, "status")``, so every error names ``file:line: field``.

Errors found after loading (reconciliation) carry only their location (`ConfigError.loc`);
`cite` turns it into the file's line, in the caller that knows the file.
"""

from __future__ import annotations

import re
from pathlib import Path

from notifier.domain.errors import ConfigError


def format_loc(loc: tuple[str | int, ...]) -> str:
    """``("subscribers", 1, "email")`` -> ``subscribers[1].email``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\".]+)\s*=")


def locate(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of `text` (TOML) where the value at `loc` is written, if any.

    Follows tables and arrays of tables; for a location inside an inline table or an
    array it returns the line of the enclosing key. None when the TOML does not set it.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            keys = [k.strip().strip('"') for k in header.group(2).split(".")]
            path: tuple[str | int, ...] = ()
            for key in keys[:-1]:
                path = (*path, key)
                if path in counters:  # inside the latest element of an array of tables
                    path = (*path, counters[path])
            path = (*path, keys[-1])
            if header.group(1) == "[[":
                counters[path] = counters.get(path, -1) + 1
                path = (*path, counters[path])
            table = path
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            parts = tuple(k.strip('"') for k in key.group(1).split("."))
            lines.setdefault((*table, *parts), number)
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def cite(error: ConfigError, path: Path | None) -> ConfigError:
    """`error`, located in the file at `path` (unchanged when it has no location)."""
    if path is None or error.loc is None or error.path is not None:
        return error
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return error.located(str(path), None)
    return error.located(str(path), locate(text, error.loc))
