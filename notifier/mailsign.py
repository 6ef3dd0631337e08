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

The key is a private key in PEM (PKCS#1 or PKCS#8, read with cryptography): RSA of 1024
bits or more (2048 advised), signing rsa-sha256, or Ed25519 (RFC 8463), signing
ed25519-sha256 (through PyNaCl; receivers that do not know it ignore that signature, so
many senders publish both). `dns_record` writes the TXT record to publish at
``selector._domainkey.domain`` (``k=rsa`` or ``k=ed25519``). Signing is dkimpy's
pure-Python RSA, about 6 ms a message on one core (Ed25519 well under 1 ms): where the
relay signs (OpenDKIM), leaving this off costs nothing.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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
    """The key file cannot be read or is not a private key a verifier accepts."""


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
    """The private key in `path` (PEM, PKCS#1 or PKCS#8, unencrypted) as dkimpy reads it:
    an RSA key of `MIN_BITS` or more as PKCS#1 PEM, an Ed25519 key as its base64 seed."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise DkimKeyError(
            f"{path} is not an unencrypted private key in PEM (make one with: openssl "
            "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048, or -algorithm ed25519)"
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return ED25519_PREFIX + base64.b64encode(seed)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"{path} is neither an RSA nor an Ed25519 key (what DKIM signs with)")
    if key.key_size < MIN_BITS:
        raise DkimKeyError(
            f"{path} holds a {key.key_size}-bit key; DKIM needs {MIN_BITS} bits or more"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


#: Marks an Ed25519 key among the bytes `read_key` returns (never part of a PEM file).
ED25519_PREFIX = b"ed25519:"


class DkimSigner:
    """Signs messages as `domain` with the key published under `selector`."""

    def __init__(self, *, domain: str, selector: str, key: bytes) -> None:
        self.domain = check_name(domain, what="DKIM domain")
        self.selector = check_name(selector, what="DKIM selector")
        self.ed25519 = key.startswith(ED25519_PREFIX)
        self._key = key.removeprefix(ED25519_PREFIX)

    @property
    def algorithm(self) -> str:
        """The signature algorithm (the ``a=`` tag): rsa-sha256 or ed25519-sha256."""
        return "ed25519-sha256" if self.ed25519 else "rsa-sha256"

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
                signature_algorithm=self.algorithm.encode("ascii"),
            )
        except dkim.DKIMException as exc:
            raise MessageBuildError(f"cannot DKIM-sign the message: {exc}") from None
        return bytes(signature) + message

    def dns_record(self) -> str:
        """The TXT record a verifier looks up, as ``name TXT "value"``."""
        if self.ed25519:
            raw = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(self._key))
            public = raw.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            kind = "ed25519"
        else:
            key = serialization.load_pem_private_key(self._key, password=None)
            public = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            kind = "rsa"
        value = f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode('ascii')}"
        # One TXT string holds at most 255 characters (RFC 1035); a verifier joins them.
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.selector}._domainkey.{self.domain}. IN TXT {strings}"

    def public_value(self) -> bytes:
        """The record's value as a verifier reads it (the strings joined)."""
        return self.dns_record().split(" TXT ", 1)[1].replace('" "', "").strip('"').encode()
