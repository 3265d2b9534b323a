"""Tokens encrypted at rest (S6): AES-256-GCM, every ciphertext names the key that made it.

`QBSYNC_CRYPTO__ENCRYPTION_KEYS` holds `key_id:base64(32 bytes)` pairs separated by commas. The
first key encrypts; every listed key decrypts, so a new key is rolled out by putting it first,
running `qbsync rotate-keys`, and only then removing the old one.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = "v1"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE_BYTES = 12


class CryptoError(Exception):
    """A key configuration or ciphertext problem; the message never contains key material."""


@dataclass(frozen=True)
class Keyring:
    primary_key_id: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            key_id, separator, encoded = entry.partition(":")
            if not separator or not KEY_ID_PATTERN.match(key_id):
                raise CryptoError(
                    "QBSYNC_CRYPTO__ENCRYPTION_KEYS: each entry must be key_id:base64key "
                    "with a key id of letters, digits, '-' or '_'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error as error:
                raise CryptoError(
                    f"QBSYNC_CRYPTO__ENCRYPTION_KEYS: key {key_id!r} is not valid base64"
                ) from error
            if len(key) != 32:
                raise CryptoError(
                    f"QBSYNC_CRYPTO__ENCRYPTION_KEYS: key {key_id!r} must be 32 bytes, "
                    f"not {len(key)}"
                )
            if key_id in keys:
                raise CryptoError(f"QBSYNC_CRYPTO__ENCRYPTION_KEYS: key {key_id!r} is listed twice")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise CryptoError("QBSYNC_CRYPTO__ENCRYPTION_KEYS: no key configured")
        return cls(order[0], keys)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """`context` (say, the row and field) is bound in, so ciphertexts can't be swapped."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.primary_key_id]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{FORMAT_VERSION}.{self.primary_key_id}.{payload}"

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        version, key_id, payload = _split(ciphertext)
        if version != FORMAT_VERSION:
            raise CryptoError(f"unknown ciphertext format {version!r}")
        key = self.keys.get(key_id)
        if key is None:
            raise CryptoError(f"ciphertext was made with key {key_id!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(payload)
        except (binascii.Error, ValueError) as error:
            raise CryptoError("ciphertext is not valid base64") from error
        # A nonce and GCM's 16-byte tag at the least; anything shorter was never sealed here.
        if len(raw) < NONCE_BYTES + 16:
            raise CryptoError("ciphertext is too short")
        try:
            return (
                AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
            )
        except (InvalidTag, UnicodeDecodeError) as error:
            raise CryptoError("ciphertext failed authentication") from error


def key_id_of(ciphertext: str) -> str:
    return _split(ciphertext)[1]


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _split(ciphertext: str) -> tuple[str, str, str]:
    parts = ciphertext.split(".", 2)
    if len(parts) != 3:
        raise CryptoError("malformed ciphertext")
    return parts[0], parts[1], parts[2]
