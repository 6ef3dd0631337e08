"""Run `notifier` as a user would: a subprocess, in a folder holding a copy of config/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Notifier:
    """The CLI in a scratch working directory, pointed at one database."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "notifier", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "notifier", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def config(self) -> Path:
        return self.cwd / "config" / "notifier.toml"


@pytest.fixture
def notifier(tmp_path: Path, database_url: str) -> Notifier:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["NOTIFIER_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(ROOT)
    return Notifier(cwd=tmp_path, env=env)
