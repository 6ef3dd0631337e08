"""DKIM (checklist 19): every email leaves signed over List-Unsubscribe, proven on the bytes
aiosmtpd received and verified by dkimpy against the record `notifier dkim` prints.

A mail client offers one-click unsubscribing only when a valid signature covers
List-Unsubscribe and List-Unsubscribe-Post (RFC 8058, section 4); a copy of either added
on the way, or a changed link, must break the signature rather than ride on it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from notifier import compose as app
from notifier import service
from notifier.cli import cli
from notifier.domain.errors import ConfigError
from notifier.domain.models import MeetingStatus
from notifier.mailsign import DkimSigner
from notifier.settings import load_settings
from notifier.store import Store
from tests.helpers.outbox import change, mail, run_until_idle, seed
from tests.integration.conftest import Clock
from tests.integration.peers import SmtpServer


def key_file(path: Path, kind: str = "rsa") -> Path:
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,  # PKCS#8, as `openssl genpkey` writes it
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def config(tmp_path: Path, smtp_port: int, dkim_table: str) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(
        f"""
public_url = "https://press.example.org"
[smtp]
port = {smtp_port}
sender = "Press office <press@mail.example.org>"
{dkim_table}
""",
        encoding="utf-8",
    )
    return path


def dns_of(signer: DkimSigner) -> dkim.DNSFunction:
    """A resolver that knows only the record the operator was told to publish."""
    name, _, _ = signer.dns_record().partition(" IN TXT ")

    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return signer.public_value() if query.decode() == name else None

    return lookup


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_every_email_is_signed_over_list_unsubscribe_and_a_tampered_copy_fails(
    store: Store,
    clock: Clock,
    smtp_server: SmtpServer,
    tmp_path: Path,
    kind: str,
    migrated_url: str,
) -> None:
    key = key_file(tmp_path / "dkim.pem", kind)
    settings = load_settings(
        config(
            tmp_path,
            smtp_server.port,
            f'[smtp.dkim]\ndomain = "Example.org"\nselector = "press2026"\nkey_file = "{key}"',
        )
    )
    assert settings.smtp.dkim is not None
    signer = settings.smtp.dkim.signer()
    record = signer.dns_record()
    assert record.startswith(f'press2026._domainkey.example.org. IN TXT "v=DKIM1; k={kind}; p=')
    # A 2048-bit key's record is longer than one TXT string may be: it is split at 255.
    assert all(len(piece) <= 255 for piece in re.findall(r'"([^"]*)"', record))
    resolve = dns_of(signer)

    await seed(store, clock(), mail("desk", "desk@example.org"), mail("wire", "wire@example.net"))
    await change(store, clock, MeetingStatus.POSTPONED, reason="medical")
    async with app.open_postman(settings, store) as postman:
        worker = app.outbox_worker(settings, store, postman)
        await run_until_idle(worker)
    assert len(smtp_server.box.raw) == 2

    for _, raw in smtp_server.box.raw:
        assert raw.startswith(f"DKIM-Signature: v=1; a={kind}-sha256;".encode())
        assert dkim.verify(raw, dnsfunc=resolve)
        head = raw.split(b"\r\n\r\n", 1)[0]
        signature = head.split(b"\r\n ", 1)[0] + b"".join(
            line for line in head.split(b"\r\n")[1:] if line.startswith(b" ")
        )
        tags = dict(part.strip().split(b"=", 1) for part in signature.split(b";") if b"=" in part)
        assert tags[b"d"] == b"example.org"
        assert tags[b"s"] == b"press2026"
        signed = [name.strip().lower() for name in tags[b"h"].replace(b" ", b"").split(b":")]
        for name in (b"from", b"to", b"subject", b"message-id", b"list-unsubscribe"):
            # Signed, and once more than present (oversigned): no copy can be added.
            assert signed.count(name) == 2, name
        assert signed.count(b"list-unsubscribe-post") == 2

        link = re.search(rb"List-Unsubscribe: <([^>]+)>", raw)
        assert link
        assert link.group(1).startswith(b"https://press.example.org/unsubscribe/")
        body_at = raw.index(b"\r\n\r\n")
        added = raw[:body_at] + b"\r\nList-Unsubscribe: <https://evil.example/u>" + raw[body_at:]
        assert not dkim.verify(added, dnsfunc=resolve)
        second_from = raw[:body_at] + b"\r\nFrom: <ceo@example.org>" + raw[body_at:]
        assert not dkim.verify(second_from, dnsfunc=resolve)
        url = link.group(1)
        moved = raw.replace(url, url[:-1] + (b"B" if url.endswith(b"A") else b"A"))
        assert moved != raw
        assert not dkim.verify(moved, dnsfunc=resolve)
        assert not dkim.verify(raw.replace(b"medical", b"mediCal"), dnsfunc=resolve)

    # What each delivery's attempt kept is the very bytes the mail server received, and
    # `notifier deliveries show ID --render` prints them.
    received = {tuple(rcpts): raw for rcpts, raw in smtp_server.box.raw}
    path = config(
        tmp_path,
        smtp_server.port,
        f'[smtp.dkim]\ndomain = "Example.org"\nselector = "press2026"\nkey_file = "{key}"',
    )
    for delivery in await service.list_deliveries(store):
        address = {"desk": "desk@example.org", "wire": "wire@example.net"}[delivery.subscriber_id]
        kept = await service.sent_message(store, delivery.id)
        assert kept == received[(address,)]
        shown = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["deliveries", "show", delivery.id, "--render", "--config", str(path)],
            env={"NOTIFIER_DATABASE_URL": migrated_url},
        )
        assert shown.exit_code == 0, shown.output
        assert shown.stdout_bytes == kept


async def test_without_dkim_nothing_is_signed(
    store: Store, clock: Clock, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings = load_settings(config(tmp_path, smtp_server.port, ""))
    await seed(store, clock(), mail("desk", "desk@example.org"))
    await change(store, clock, MeetingStatus.CLEARED, reason="ok")
    async with app.open_postman(settings, store) as postman:
        await run_until_idle(app.outbox_worker(settings, store, postman))
    ((_, raw),) = smtp_server.box.raw
    assert b"DKIM-Signature" not in raw


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'domain = "example.org"\nselector = "s1"\nkey_file = "{missing}"',
            r"smtp\.dkim\.key_file.*cannot read .*missing\.pem",
        ),
        (
            'domain = "example.org"\nselector = "s1"\nkey_file = "{short}"',
            r"smtp\.dkim\.key_file.*512-bit key; DKIM needs 1024 bits or more",
        ),
        (
            'domain = "example.org"\nselector = "s1"\nkey_file = "{text}"',
            r"smtp\.dkim\.key_file.*not an unencrypted private key in PEM",
        ),
        (
            'domain = "other.example"\nselector = "s1"\nkey_file = "{good}"',
            r"does not align with smtp\.sender's domain 'mail\.example\.org'",
        ),
        (
            'domain = "example.org"\nselector = "s 1"\nkey_file = "{good}"',
            r"smtp\.dkim\.selector.*not a DNS name",
        ),
    ],
)
def test_a_dkim_table_that_cannot_sign_is_refused_naming_the_field(
    tmp_path: Path, table: str, expected: str
) -> None:
    paths = {
        "missing": tmp_path / "missing.pem",
        # cryptography will not make a key this short; openssl did, once, for this file.
        "short": Path(__file__).parents[1] / "fixtures" / "dkim-512.pem",
        "text": tmp_path / "text.pem",
        "good": key_file(tmp_path / "good.pem"),
    }
    paths["text"].write_text("-----BEGIN NOTHING-----\nhello\n-----END NOTHING-----\n")
    with pytest.raises(ConfigError, match=expected):
        load_settings(config(tmp_path, 2525, "[smtp.dkim]\n" + table.format(**paths)))


def test_the_signature_header_is_within_line_limits(tmp_path: Path) -> None:
    signer = DkimSigner.from_file(
        domain="example.org", selector="s1", key_file=key_file(tmp_path / "k.pem")
    )
    message = (
        b"From: Press <press@example.org>\r\nTo: desk@example.org\r\nSubject: hi\r\n"
        b"Message-ID: <a@example.org>\r\n\r\nbody\r\n"
    )
    signed = signer.sign(message)
    assert signed.endswith(message)
    head = signed[: -len(message)]
    assert head.endswith(b"\r\n")
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


def test_notifier_dkim_prints_the_record_to_publish_or_says_how_to_turn_it_on(
    tmp_path: Path,
) -> None:
    key = key_file(tmp_path / "dkim.pem")
    table = f'[smtp.dkim]\ndomain = "example.org"\nselector = "press2026"\nkey_file = "{key}"'
    path = config(tmp_path, 2525, table)
    result = CliRunner().invoke(cli, ["dkim", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    signer = DkimSigner.from_file(domain="example.org", selector="press2026", key_file=key)
    assert result.stdout.strip() == signer.dns_record()

    off = CliRunner().invoke(cli, ["dkim", "--config", str(config(tmp_path, 2525, ""))])
    assert off.exit_code == 1
    assert off.stderr.strip() == (
        "notifier: error: DKIM signing is off: set [smtp.dkim] domain, selector and key_file "
        "(README, Email authentication)"
    )
