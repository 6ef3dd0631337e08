from __future__ import annotations

import base64
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from notifier.channels.webhook import retry_after_seconds, sign, signature_header
from notifier.domain.addresses import address_allowed, host_allowed
from notifier.domain.errors import ConfigError
from notifier.settings import load_settings
from notifier.tokens import read_unsubscribe_token, unsubscribe_token

KNOWN_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_matches_the_standard_webhooks_known_answer() -> None:
    body = b'{"test": 2432232314}'
    assert (
        sign(KNOWN_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_every_secret_signs_so_a_rotated_in_secret_verifies() -> None:
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    stamp = int(datetime.now(UTC).timestamp())
    header = signature_header([KNOWN_SECRET, new], "msg_1", stamp, b"{}")
    assert len(header.split()) == 2
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": header}
    for secret in (KNOWN_SECRET, new):
        assert Webhook(secret).verify(b"{}", headers) == {}


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),  # IPv4-mapped metadata
        ("::127.0.0.1", False),  # IPv4-compatible loopback
        ("::a9fe:a9fe", False),  # IPv4-compatible metadata, written in hex
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8: leads somewhere public
        ("64:ff9b:1::808:808", False),  # local-use NAT64: where it leads is unknown
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo to 192.0.2.45
        ("fec0::1", False),  # site-local
        ("2001:db8::1", False),  # documentation
        ("100::1", False),  # discard
        ("ff02::1", False),  # multicast
        ("[::ffff:127.0.0.1]", False),  # as written in a URL
        ("224.0.0.1", False),
        ("not an address", False),
    ],
)
def test_only_global_unicast_addresses_are_allowed_by_default(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed


def test_allow_cidrs_opens_exactly_what_they_list() -> None:
    allow = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
    assert address_allowed("127.0.0.1", allow)
    assert address_allowed("10.9.9.9", allow)
    assert not address_allowed("127.0.0.2", allow)
    assert not address_allowed("192.168.0.1", allow)


def test_hosts_are_judged_now_when_literal_and_on_connect_when_named() -> None:
    assert host_allowed("127.0.0.1") is False
    assert host_allowed("[::1]") is False
    assert host_allowed("localhost") is False
    assert host_allowed("api.localhost") is False
    assert host_allowed("8.8.8.8") is True
    assert host_allowed("hooks.example.org") is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now=now) == 120
    assert retry_after_seconds("Sun, 01 Mar 2026 12:02:00 GMT", now=now) == 120
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None


def test_unsubscribe_tokens_are_signed_per_subscriber_channel_and_address() -> None:
    token = unsubscribe_token("key", "press-desk", "email", "press@example.org")
    read = read_unsubscribe_token("key", token)
    assert read is not None
    assert (read.subscriber_id, read.channel) == ("press-desk", "email")
    assert read.sent_to("Press@Example.org ")
    assert not read.sent_to("new-desk@example.org")
    assert not read.sent_to(None)
    assert read_unsubscribe_token("other-key", token) is None
    subject, mac = token.split(".")
    forged = unsubscribe_token("key", "wire-service", "email", "x@example.org").split(".")[0]
    forged += "." + mac
    assert read_unsubscribe_token("key", forged) is None
    assert read_unsubscribe_token("key", "garbage") is None
    assert read_unsubscribe_token("key", subject + ".!!!") is None


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0", "0.0.0.0/1", "10.0.0.0/7", "::/7"])
def test_an_allow_list_entry_that_opens_everything_is_refused(network: str, tmp_path: Path) -> None:
    for section in ("webhooks", "feeds"):
        path = tmp_path / "n.toml"
        path.write_text(f'[{section}]\nallow_cidrs = ["{network}"]\n')
        with pytest.raises(ConfigError, match=rf"{section}\.allow_cidrs\[0\]: .*at least /8"):
            load_settings(path)


def test_a_feed_on_a_private_address_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    source = '[[sources]]\nkind = "json"\nurl = "http://[::ffff:10.0.0.1]/feed"\n'
    path.write_text(source)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.url: feed .* feeds\.allow_cidrs"):
        load_settings(path)
    path.write_text('[feeds]\nallow_cidrs = ["10.0.0.0/8"]\n' + source)
    assert len(load_settings(path).sources) == 1


def test_a_token_from_before_addresses_were_bound_is_refused() -> None:
    import hashlib
    import hmac

    subject = b"press-desk:email"
    mac = hmac.new(b"key", b"unsubscribe\x00" + subject, hashlib.sha256).digest()[:18]
    legacy = (
        base64.urlsafe_b64encode(subject).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    )
    assert read_unsubscribe_token("key", legacy) is None
