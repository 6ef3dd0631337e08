"""The daemon and the CLI as processes, for the e2e suites: start `notifier run` and wait for
its start line (its log kept), run a command, wait for a condition."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


async def cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def spawn_daemon(
    env: dict[str, str], cwd: Path, *, preexec_fn: Callable[[], None] | None = None
) -> asyncio.subprocess.Process:
    """`notifier run` as a process, its log on a pipe, not waited for; `preexec_fn` runs
    in the child before exec (a resource limit, say)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "run",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )


async def start_daemon(
    env: dict[str, str],
    cwd: Path,
    *,
    log: list[str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> asyncio.subprocess.Process:
    """`notifier run`, once it has logged its start-up line; `log` collects what it says."""
    process = await spawn_daemon(env, cwd, preexec_fn=preexec_fn)
    assert process.stderr is not None
    seen: list[str] = log if log is not None else []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        seen.append(line)
        if "started: database" in line:
            # Keep draining stderr so the daemon never blocks on a full pipe.
            asyncio.get_running_loop().create_task(_drain(process, seen))
            return process
        assert line, "the daemon exited before it started:\n" + "".join(seen)
    raise AssertionError("the daemon did not start within 60s")


async def _drain(process: asyncio.subprocess.Process, into: list[str]) -> None:
    assert process.stderr is not None
    while line := await process.stderr.readline():
        into.append(line.decode(errors="replace"))


async def wait_for(condition: Callable[[], Any], seconds: float, what: str = "") -> None:
    """Wait until `condition()` (a function or a coroutine function) is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition() if asyncio.iscoroutinefunction(condition) else condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {seconds}s{': ' + what if what else ''}")
