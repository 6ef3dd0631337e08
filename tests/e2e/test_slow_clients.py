"""Slow and idle clients against the real daemon under a small descriptor limit: the HTTP
side closes them (head timeout, header limit, connection cap) and the outbox keeps
sending beside them; and with the port taken, the daemon starts nothing and says so."""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.daemon import start_daemon, wait_for
from tests.helpers.environment import environment
from tests.integration.conftest import SECRET
from tests.integration.peers import Receiver, free_port

ONE_BACKEND = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
#: The daemon's descriptor limit (soft and hard: it cannot raise it).
DESCRIPTORS = 256
IDLE = 150
HALF_SENT = 150
READERS = 40
HEAD_TIMEOUT = 1.0


def _small_limit() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


def _config(receiver: Receiver, port: int) -> str:
    lines = [
        f'listen = "127.0.0.1:{port}"',
        'api_tokens = ["t0ken"]',
        "[http]",
        f'head_timeout = "{int(HEAD_TIMEOUT)}s"',
        'keep_alive = "1s"',
        "[webhooks]",
        'allow_cidrs = ["127.0.0.1/32"]',
        'timeout = "2s"',
        "[delivery]",
        "concurrency = 8",
        "[[meetings]]",
        'id = "talks"',
        'title = "Talks"',
        'timezone = "Europe/Moscow"',
        'starts_at = "2030-03-02T19:00:00+03:00"',
        'status = "postponed"',
    ]
    for n in range(READERS):
        lines += [
            "[[subscribers]]",
            f'id = "hook-{n}"',
            f'webhook = {{ url = "{receiver.url(f"/h/{n}")}", secrets = ["{SECRET}"] }}',
        ]
    return "\n".join(lines) + "\n"


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closed the connection (EOF or reset); `within` if not."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while await reader.read(65_536):
                pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        return within
    return time.monotonic() - began


@ONE_BACKEND
async def test_idle_and_half_sent_clients_are_closed_and_the_outbox_keeps_sending(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await Receiver(secrets=[SECRET]).start()
    port = free_port()
    (tmp_path / "notifier.toml").write_text(_config(receiver, port))
    env = environment(tmp_path, database_url)
    log: list[str] = []
    daemon = await start_daemon(env, tmp_path, log=log, preexec_fn=_small_limit)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        # More idle and half-sent connections than the daemon has descriptors, opened a
        # few at a time: a flood beyond the listen backlog waits in the kernel, whose
        # handshakes finish when it retries (seconds later), not in the daemon.
        opening = asyncio.Semaphore(16)

        async def open_one(half: bool) -> None:
            async with opening:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if half:
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    await writer.drain()
            held.append((reader, writer))

        opened = time.monotonic()
        await asyncio.gather(*(open_one(n % 2 == 1) for n in range(IDLE + HALF_SENT)))
        # A head that keeps growing: 431, not 20 MiB held in memory.
        big_reader, big_writer = await asyncio.open_connection("127.0.0.1", port)
        big_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
        await big_writer.drain()
        answer = await asyncio.wait_for(big_reader.read(200), 5)
        assert answer.startswith(b"HTTP/1.1 431 "), answer

        # Meanwhile a normal request succeeds, and its fan-out reaches every reader.
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": "Bearer t0ken"},
            timeout=10,
        )
        async with client:
            pushed = await client.post(
                "/v1/meetings/talks/status", json={"status": "cleared", "reason": "clear"}
            )
            assert pushed.status_code == 202, pushed.text
            await wait_for(lambda: len(receiver.verified()) >= READERS, 30, "every webhook")
            assert {h.path for h in receiver.verified()} == {f"/h/{n}" for n in range(READERS)}

        # Every idle and half-sent connection was closed by the daemon within the head
        # timeout (or at once, evicted to stay under the cap).
        waits = await asyncio.gather(
            *(_closed_by_server(reader, HEAD_TIMEOUT + 5) for reader, _ in held)
        )
        assert time.monotonic() - opened < HEAD_TIMEOUT + 8
        late = [n for n, wait in enumerate(waits) if wait >= HEAD_TIMEOUT + 5]
        assert not late, f"{len(late)} connections still open: {late[:20]}\n" + "".join(log)
        async with httpx.AsyncClient(timeout=5) as after:
            assert (await after.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        text = "".join(log)
        assert "Too many open files" not in text
        assert "out of system resource" not in text
        assert "HTTP connections held to" in text  # the cap was fitted to the small limit
    finally:
        for _, writer in held:
            writer.close()
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 30) == 0, "".join(log)
        await receiver.stop()


@ONE_BACKEND
async def test_with_the_port_taken_the_daemon_starts_nothing_and_names_the_setting(
    tmp_path: Path, database_url: str
) -> None:
    receiver = await Receiver(secrets=[SECRET]).start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        (tmp_path / "notifier.toml").write_text(_config(receiver, port))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notifier",
            "run",
            cwd=tmp_path,
            env=environment(tmp_path, database_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    await receiver.stop()
    said = (out + err).decode()
    assert process.returncode == 1, said
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) == 1, said
    assert f"127.0.0.1:{port}" in lines[0]
    assert "address already in use" in lines[0]
    assert "`listen`" in lines[0]
    assert "NOTIFIER_LISTEN" in lines[0]
    # Nothing started: no start line, no worker, no fan-out, not even the database.
    assert "started" not in said
    assert not (tmp_path / "notifier.db").exists()
    assert receiver.hits == []
