"""DKIM signatures (RFC 6376) on every email, with dkimpy.

A receiver trusts `List-Unsubscribe` and `List-Unsubscribe-Post` for one-click
unsubscribing only when a valid DKIM signature covers them (RFC 8058, section 4), and
Gmail and Yahoo require DKIM of bulk senders. `DkimSigner.sign` returns the message with a
``DKIM-Signature`` header first, covering:

- every header of `SIGNED` the message holds;
- once more each of `OVERSIGNED` (RFC 6376, section 8.15), so that a copy added on the way
  (a second From, a List-Unsubscribe pointing elsewhere) breaks the signature instead of
  riding on it;
- the body, relaxed header and simple body canonicalisation (dkimpy's default).

The key is an RSA private key in PEM (PKCS#1 or PKCS#8, read with cryptography), 1024
bits or more (2048 advised); `dns_record` writes the TXT record to publish at
``selector._domainkey.domain``. Signing is dkimpy's pure-Python RSA, about 6 ms a message
on one core: where the relay signs (OpenDKIM), leaving this off costs nothing.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier.mail import MessageBuildError

#: Headers signed when the message has them.
SIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"auto-submitted",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
#: Headers of which no further copy may be added after signing.
OVERSIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)

#: The shortest RSA key a verifier accepts (RFC 8301: 1024 bits at least).
MIN_BITS = 1024
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)


class DkimKeyError(ValueError):
    """The key file cannot be read or is not an RSA private key a verifier accepts."""


def check_name(value: str, *, what: str) -> str:
    """`value` as a DNS name of labels (a selector or a signing domain), lower-cased."""
    try:
        name = value.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{what} {value!r} is not a DNS name") from None
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(part) for part in name.split(".")):
        raise ValueError(f"{what} {value!r} is not a DNS name (letters, digits, '-' and '.')")
    return name


def read_key(path: Path) -> bytes:
    """The RSA private key in `path` (PEM, PKCS#1 or PKCS#8, unencrypted), checked to be
    of `MIN_BITS` or more, as the PKCS#1 PEM dkimpy reads."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise DkimKeyError(
            f"{path} is not an unencrypted private key in PEM "
            "(make one with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"{path} is not an RSA key (DKIM here signs with rsa-sha256)")
    if key.key_size < MIN_BITS:
        raise DkimKeyError(
            f"{path} holds a {key.key_size}-bit key; DKIM needs {MIN_BITS} bits or more"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class DkimSigner:
    """Signs messages as `domain` with the key published under `selector`."""

    def __init__(self, *, domain: str, selector: str, key: bytes) -> None:
        self.domain = check_name(domain, what="DKIM domain")
        self.selector = check_name(selector, what="DKIM selector")
        self._key = key

    @classmethod
    def from_file(cls, *, domain: str, selector: str, key_file: Path) -> DkimSigner:
        return cls(domain=domain, selector=selector, key=read_key(key_file))

    def sign(self, message: bytes) -> bytes:
        """`message` with its DKIM-Signature header in front."""
        head = message.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _HEADER_NAME.findall(head)}
        headers = [name for name in SIGNED if name in present]
        headers += [name for name in OVERSIGNED if name in present]
        try:
            signature = dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                include_headers=headers,
                linesep=b"\r\n",
            )
        except dkim.DKIMException as exc:
            raise MessageBuildError(f"cannot DKIM-sign the message: {exc}") from None
        return bytes(signature) + message

    def dns_record(self) -> str:
        """The TXT record a verifier looks up, as ``name TXT "value"``."""
        key = serialization.load_pem_private_key(self._key, password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
        # One TXT string holds at most 255 characters (RFC 1035); a verifier joins them.
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.selector}._domainkey.{self.domain}. IN TXT {strings}"

    def public_value(self) -> bytes:
        """The record's value as a verifier reads it (the strings joined)."""
        return self.dns_record().split(" TXT ", 1)[1].replace('" "', "").strip('"').encode()
