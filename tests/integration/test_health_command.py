"""`notifier health`, the container's health check, asks /healthz where the settings say
the daemon listens: a port moved by NOTIFIER_LISTEN moves the check with it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from notifier.cli import cli

CONFIG = Path(__file__).resolve().parents[2] / "config" / "notifier.toml"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def daemon_port() -> Iterator[int]:
    """A stand-in for the daemon's HTTP server on a port of its own, on every address."""
    server = ThreadingHTTPServer(("0.0.0.0", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _health(listen: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["health", "--config", str(CONFIG), "--timeout", "2"],
        env={"NOTIFIER_LISTEN": listen, "http_proxy": "http://127.0.0.1:9", "NO_PROXY": ""},
    )
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_health_asks_the_listen_address_of_the_settings(daemon_port: int, host: str) -> None:
    code, said = _health(f"{host}:{daemon_port}")
    assert code == 0, said
    assert f"http://127.0.0.1:{daemon_port}/healthz: ok" in said


def test_health_fails_in_one_line_when_nothing_answers_there(daemon_port: int) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
    code, said = _health(f"127.0.0.1:{free}")
    assert code == 1
    lines = said.strip().splitlines()
    assert len(lines) == 1, said
    assert lines[0].startswith(f"notifier: error: http://127.0.0.1:{free}/healthz: ")


def test_health_fails_when_the_daemon_is_not_healthy(
    daemon_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Health, "status", 503)
    code, said = _health(f"127.0.0.1:{daemon_port}")
    assert code == 1
    assert f"http://127.0.0.1:{daemon_port}/healthz answered 503" in said
