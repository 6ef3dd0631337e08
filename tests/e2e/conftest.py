"""Run `notifier` as a user would, in a folder holding a copy of config/.

A command runs in this process through Typer's `CliRunner` (an interpreter start costs
1-2 s, and a CLI suite starts a hundred), with the same arguments, environment and working
directory a subprocess would have, and with what a subprocess would show for an uncaught
exception (a traceback on stderr, exit 1). The daemon and anything about signals or the
entry point itself runs as a real process: `spawn`, or `call(..., process=True)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.peers import free_port

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

    def __call__(self, *args: str, timeout: float = 60, process: bool = False) -> Result:
        # Under a running event loop (Playwright's sync API keeps one) the command's own
        # asyncio.run cannot start: run it as a process there.
        if not process and asyncio._get_running_loop() is None:
            return self._in_process(args)
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

    def _in_process(self, args: tuple[str, ...]) -> Result:
        from typer.testing import CliRunner

        from notifier.cli import cli

        # The variables of `env`, and every other NOTIFIER_* of this process unset.
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("NOTIFIER_")}
        env |= {k: v for k, v in self.env.items() if k.startswith("NOTIFIER_")}
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            with contextlib.chdir(self.cwd):
                done = CliRunner().invoke(cli, list(args), env=env, prog_name="notifier")
        finally:
            # The command set up logging to its own (now closed) stderr: put pytest's back.
            root.handlers[:], root.level = handlers, level
        err = done.stderr
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            err += "".join(traceback.format_exception(done.exception))
        return Result(done.exit_code, done.stdout, err)

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
    # The shipped config listens on 127.0.0.1:8080: a daemon of a test, or of the machine,
    # would collide with another there. A port of the test's own (public_url unchanged).
    env["NOTIFIER_LISTEN"] = f"127.0.0.1:{free_port()}"
    return Notifier(cwd=tmp_path, env=env)
