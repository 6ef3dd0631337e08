"""The CLI starts without the daemon's weight: `notifier --version` and `notifier check`
import neither SQLAlchemy, FastAPI, aiohttp nor the daemon (their import is most of a second
of start-up; the time itself is measured, not asserted: README, Development)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "fastapi", "uvicorn", "aiohttp", "apscheduler", "notifier.daemon")


def imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(done.stdout.split())


def test_version_imports_nothing_heavy() -> None:
    loaded = imported_after(
        "from notifier.cli import cli\ntry:\n    cli(['--version'])\nexcept SystemExit:\n    pass"
    )
    assert "notifier.cli" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY}


def test_a_command_that_needs_the_store_still_gets_it() -> None:
    loaded = imported_after(
        "from notifier.cli import cli\n"
        "try:\n"
        "    cli(['db', 'installation', '--config', 'no-such.toml'])\n"
        "except SystemExit:\n"
        "    pass"
    )
    assert "notifier.settings" in loaded
