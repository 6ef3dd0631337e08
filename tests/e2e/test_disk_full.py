"""A nearly full disk under a SQLite database: /readyz says so before writes fail, and when
they do fail the API's 503 and the daemon's log say "disk full", not only that the
database is unavailable. The daemon is a real process; the small disk a real tmpfs."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT
from tests.helpers.daemon import start_daemon
from tests.integration.peers import free_port

TOKEN = "disk-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUSH = "/v1/meetings/talks/status"


def _config(path: Path, port: int, *, min_free_disk: str | None = None) -> None:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f'api_tokens = ["{TOKEN}"]',
        *([f'min_free_disk = "{min_free_disk}"'] if min_free_disk else []),
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        'starts_at = "2030-03-02T19:00:00+03:00"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _env(tmp_path: Path, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    return env | {
        "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "NOTIFIER_CONFIG": str(tmp_path / "notifier.toml"),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs), or skip where mounting is not allowed."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def _stop(daemon: asyncio.subprocess.Process) -> None:
    daemon.terminate()
    await asyncio.wait_for(daemon.wait(), 30)


async def test_readyz_is_503_with_the_cause_below_min_free_disk(tmp_path: Path) -> None:
    port, where = free_port(), tmp_path.resolve()  # noqa: ASYNC240  # once, before the daemon
    # More than any disk has free: the check fails wherever the test runs.
    _config(tmp_path / "notifier.toml", port, min_free_disk="1000000TiB")
    daemon = await start_daemon(_env(tmp_path, tmp_path / "notifier.db"), tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = await client.get("/readyz")
    finally:
        await _stop(daemon)
    assert answer.status_code == 503
    body = answer.json()
    assert body["detail"].startswith("not ready: disk nearly full: "), body
    assert f"MiB free on {where} (min_free_disk is " in body["detail"]
    assert body["checks"]["disk"] is False
    assert body["checks"]["database"] is True  # it still takes writes: this is a warning


async def test_a_full_disk_is_named_in_readyz_the_503_and_the_log(
    tmp_path: Path, tiny_disk: Path
) -> None:
    port = free_port()
    _config(tmp_path / "notifier.toml", port)  # min_free_disk: the default 64 MiB
    log: list[str] = []
    daemon = await start_daemon(_env(tmp_path, tiny_disk / "notifier.db"), tmp_path, log=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            nearly = (await client.get("/readyz")).json()
            assert re.search(rf"disk nearly full: [1-4] MiB free on {tiny_disk} ", nearly["detail"])
            # Fill the rest of the disk, then push until the database cannot grow.
            with (tiny_disk / "filler").open("wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass
            answers = []
            for number in range(200):
                pushed = await client.post(
                    PUSH,
                    json={"status": "postponed", "reason": f"attempt {number} " + "x" * 1500},
                    headers=AUTH,
                )
                answers.append(pushed.status_code)
                if pushed.status_code == 503:
                    break
            assert answers[-1] == 503, answers
            assert 500 not in answers
            problem = pushed.json()
            assert problem["detail"].startswith("disk full: "), problem
            ready = (await client.get("/readyz")).json()
    finally:
        await _stop(daemon)
    assert "disk full" in ready["detail"], ready
    said = [line for line in log if PUSH in line and "disk full" in line]
    assert said, "".join(log[-20:])
