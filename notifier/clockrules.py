"""Which clock rules this process runs on: the version of the tz database `zoneinfo` reads.

`zoneinfo` looks for a zone in each folder of its search path (`zoneinfo.TZPATH`, set by
``PYTHONTZPATH``) and then in the `tzdata` package. The version is the one its folder
says (``tzdata.zi``'s first line, or a ``+VERSION`` file), else the package's.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from pathlib import Path


@functools.cache
def tzdata_version() -> str:
    """The tz database version in use ("2026a"), or "" when no folder says."""
    for folder in zoneinfo.TZPATH:
        said = _said(Path(folder))
        if said:
            return said
    try:
        import tzdata  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a dependency; here for a trimmed install
        return ""
    return str(tzdata.IANA_VERSION)


def folder_version(folder: Path) -> str:
    """The version a zoneinfo folder says it holds ("" when it says none)."""
    return _said(folder)


def _said(folder: Path) -> str:
    version = folder / "+VERSION"
    if version.is_file():
        return version.read_text(encoding="ascii", errors="replace").strip()[:32]
    zi = folder / "tzdata.zi"
    if zi.is_file():
        with zi.open(encoding="ascii", errors="replace") as lines:
            first = lines.readline()
        match = re.match(r"#\s*version\s+(\S+)", first)
        if match:
            return match[1][:32]
    return ""
