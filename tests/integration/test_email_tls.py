"""SMTP security modes against a real aiosmtpd server with trustme certificates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifier.channels.email import EmailChannel
from notifier.domain.errors import (
    ChannelUnavailable,
)
from tests.integration.peers import SmtpServer, free_port

MESSAGE = b"From: n@example.org\r\nTo: r@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def client_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


async def settle() -> None:
    """Let a refused TLS session finish closing before the test's event loop ends.

    aiosmtplib closes the TLS transport on a failed login, but the socket under it closes
    only after the TLS shutdown exchange, which a loaded machine may not finish before the
    loop is torn down (a ResourceWarning then surfaces in a later test).
    """
    await asyncio.sleep(0.5)


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"notifier", b"s3cret")
    return AuthResult(success=ok, handled=False)


def serve(**options: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[SmtpServer]:
    yield from serve(
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )


async def test_starttls_with_login_delivers(
    starttls_server: SmtpServer, client_context: ssl.SSLContext
) -> None:
    async with EmailChannel(
        host="127.0.0.1",
        port=starttls_server.port,
        security="starttls",
        username="notifier",
        password="s3cret",
        tls_context=client_context,
    ) as channel:
        await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
    await settle()
    assert len(starttls_server.box.to("r@example.org")) == 1


async def test_a_wrong_password_pauses_the_channel_instead_of_failing_the_reader(
    starttls_server: SmtpServer, client_context: ssl.SSLContext
) -> None:
    async with EmailChannel(
        host="127.0.0.1",
        port=starttls_server.port,
        security="starttls",
        username="notifier",
        password="wrong",
        tls_context=client_context,
    ) as channel:
        with pytest.raises(ChannelUnavailable) as raised:
            await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
        assert raised.value.code == 535
        assert 4 < (raised.value.retry_after or 0) <= 5
        assert channel.paused_for > 4
        connections = starttls_server.box.connections
        with pytest.raises(ChannelUnavailable, match="paused"):  # not even a connection
            await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
        assert starttls_server.box.connections == connections
    await settle()


async def test_plain_text_to_a_server_that_requires_tls_is_refused(
    starttls_server: SmtpServer,
) -> None:
    # 530 "must issue STARTTLS first" is about our settings, not the reader: a pause.
    async with EmailChannel(host="127.0.0.1", port=starttls_server.port) as channel:
        with pytest.raises(ChannelUnavailable, match="530"):
            await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
    await settle()


async def test_an_untrusted_certificate_is_not_accepted(starttls_server: SmtpServer) -> None:
    async with EmailChannel(
        host="127.0.0.1",
        port=starttls_server.port,
        security="starttls",
        username="notifier",
        password="s3cret",
    ) as channel:
        with pytest.raises(ChannelUnavailable, match="cannot reach the mail server"):
            await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
    await settle()


async def test_a_server_that_is_down_pauses_the_channel() -> None:
    async with EmailChannel(host="127.0.0.1", port=free_port(), timeout=2) as channel:
        with pytest.raises(ChannelUnavailable, match="cannot reach the mail server"):
            await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")


@pytest.fixture
def tls_server(server_context: ssl.SSLContext) -> Iterator[SmtpServer]:
    yield from serve(ssl_context=server_context)


async def test_implicit_tls_delivers(
    tls_server: SmtpServer, client_context: ssl.SSLContext
) -> None:
    async with EmailChannel(
        host="127.0.0.1", port=tls_server.port, security="tls", tls_context=client_context
    ) as channel:
        await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
    await settle()
    assert len(tls_server.box.to("r@example.org")) == 1


async def test_starttls_required_by_us_but_not_offered_fails_closed(
    client_context: ssl.SSLContext,
) -> None:
    """A relay (or a man in the middle stripping the capability) that does not offer
    STARTTLS gets no message in clear text: the send fails and the channel pauses."""
    for server in serve():  # no tls_context: EHLO lists no STARTTLS
        async with EmailChannel(
            host="127.0.0.1",
            port=server.port,
            security="starttls",
            tls_context=client_context,
            timeout=5,
        ) as channel:
            with pytest.raises(ChannelUnavailable):
                await channel.send(MESSAGE, sender="n@example.org", recipient="r@example.org")
        assert server.box.messages == []
        assert server.box.rcpts_asked == []  # not even an envelope in clear text
    await settle()
