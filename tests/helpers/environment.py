"""The environment an e2e daemon runs in: no NOTIFIER_* of the machine, the test database
and config file, this checkout on the path."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import ROOT


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }
    return env
