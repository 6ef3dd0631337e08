"""Malformed authentication is a 401 or 400, never a 500: hypothesis over the raw header
bytes, sent to the real daemon (uvicorn with httptools) over a socket. Some draws are signed
correctly, so what lies behind a valid signature (long or odd ids) is tried too."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.environment import environment
from tests.integration.peers import free_port

SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
UNICODE_DIGITS = "0١٢٣٤٥٦٧٨٩۰۱۲३४५๑๒１２３"
PATH = "/v1/meetings/talks/status"

header_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=20),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.integers(min_value=1, max_value=5000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: "x" * n),
    st.sampled_from(["", " ", "v1,", "v1,=", "v1, v1,", "v1,AAAA v2,BBBB", "Bearer", "Basic"]),
)
signature = st.one_of(
    header_text, header_text.map(lambda t: "v1," + t), st.just("v1," + "A" * 44 + " " * 500)
)
authorization = st.one_of(
    st.none(),
    header_text,
    header_text.map(lambda t: "Bearer " + t),
    header_text.map(lambda t: "bearer\t" + t),
)
timestamp = st.one_of(
    header_text,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.builds(lambda: str(int(time.time()))),  # current: gets past the clock check
)


def sign(webhook_id: str, webhook_timestamp: str) -> str:
    """A correct signature of the request body for whatever id and timestamp were drawn."""
    body = BODY.decode()
    signed = f"{webhook_id}.{webhook_timestamp}.{body}".encode("utf-8", "surrogatepass")
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def config(port: int) -> str:
    return "\n".join(
        [
            f'listen = "127.0.0.1:{port}"',
            'api_tokens = ["dev-token"]',
            "[[upstreams]]",
            'name = "protocol-office"',
            f'secrets = ["{SECRET}"]',
            "[[meetings]]",
            'id = "talks"',
            'title = "Talks"',
            'timezone = "Europe/Moscow"',
            'starts_at = "2030-03-02T19:00:00+03:00"',
            "[[subscribers]]",
            'id = "desk"',
            'email = "desk@example.org"',
        ]
    )


BODY = b'{"meeting": "talks", "status": "confirmed"}'


def exchange(port: int, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """Send one raw request; the status code and content type of the answer."""
    body = BODY
    lines = [
        f"POST {PATH} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
    ]
    for name, value in headers:
        clean = value.replace("\r", "").replace("\n", "")
        lines.append(name.encode() + b": " + clean.encode("utf-8", "surrogatepass"))
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    content_type = ""
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-type":
            content_type = value.strip()
    return status, content_type


def start(tmp_path: Path, database_url: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    (tmp_path / "notifier.toml").write_text(config(port))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "notifier", "run"],
        cwd=tmp_path,
        env=environment(tmp_path, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "the daemon exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return daemon, port
        except OSError:
            time.sleep(0.1)
    daemon.kill()
    raise AssertionError("the daemon did not listen within 60 s")


def test_malformed_auth_headers_get_401_or_400_never_500(tmp_path: Path, database_url: str) -> None:
    daemon, port = start(tmp_path, database_url)
    try:

        @given(
            webhook_id=st.one_of(st.none(), header_text),
            webhook_timestamp=st.one_of(st.none(), timestamp),
            webhook_signature=st.one_of(st.none(), signature, st.just("SIGN")),
            authorization=authorization,
        )
        # What broke before: digits past int()'s limit, digits of other scripts,
        # non-ASCII signatures, ids longer than the column, signed or not.
        @example(
            webhook_id="msg_1",
            webhook_timestamp="9" * 5000,
            webhook_signature="v1,x",
            authorization=None,
        )
        @example(
            webhook_id="msg_1",
            webhook_timestamp="١٧٠٠٠٠٠٠٠٠",
            webhook_signature="v1,x",
            authorization=None,
        )
        @example(
            webhook_id="msg_1",
            webhook_timestamp="NOW",
            webhook_signature="v1,ü",
            authorization=None,
        )
        @example(
            webhook_id="i" * 300,
            webhook_timestamp="NOW",
            webhook_signature="SIGN",
            authorization=None,
        )
        @example(
            webhook_id="msg_é",
            webhook_timestamp="NOW",
            webhook_signature="SIGN",
            authorization=None,
        )
        @example(
            webhook_id=None,
            webhook_timestamp=None,
            webhook_signature=None,
            authorization="Bearer dev-tokenü",
        )
        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(
            webhook_id: str | None,
            webhook_timestamp: str | None,
            webhook_signature: str | None,
            authorization: str | None,
        ) -> None:
            if webhook_timestamp == "NOW":
                webhook_timestamp = str(int(time.time()))
            if webhook_signature == "SIGN":  # correctly signed: the logic behind it answers
                webhook_signature = sign(webhook_id or "", webhook_timestamp or "")
            headers = [
                (name, value)
                for name, value in (
                    ("webhook-id", webhook_id),
                    ("webhook-timestamp", webhook_timestamp),
                    ("webhook-signature", webhook_signature),
                    ("Authorization", authorization),
                )
                if value is not None
            ]
            if authorization is not None and authorization.strip() == "Bearer dev-token":
                return  # a valid token is not a malformed one
            status, content_type = exchange(port, headers)
            assert status < 500, (status, headers)
            assert status in (202, 400, 401, 409, 422, 429), (status, headers)
            if status == 401:
                assert content_type == "application/problem+json"

        check()
        # The daemon is still answering properly afterwards.
        assert exchange(port, [("Authorization", "Bearer dev-token")])[0] == 202
    finally:
        daemon.terminate()
        daemon.wait(30)
