"""Recoverable secrets at rest: AES-256-GCM with a key derived from the server pepper.

Used wherever a secret must be read back, so it cannot be stored as a hash: webhook endpoint
secrets, gateway providers' injected headers, and a pass key kept for its replay window. The
sealing key is ``HKDF-SHA256(pepper, info="passgate webhook secrets v1")`` (the info string
predates the other uses and stays, so existing values still open): a database dump alone
reveals no secret. The row id is the associated data, so a sealed value copied onto another
row does not open. Changing the pepper makes existing sealed values unreadable.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_INFO = b"passgate webhook secrets v1"
_NONCE_BYTES = 12


class SecretUnreadableError(ValueError):
    """A sealed secret did not open (other pepper, other row, or tampered with)."""


class SecretBox:
    """Seals and opens endpoint secrets; never logs or repeats them."""

    def __init__(self, pepper: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            pepper.encode()
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, secret: str, *, context: str) -> str:
        """``v1.<base64url(nonce || ciphertext || tag)>`` bound to ``context`` (the row id)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sealed: str, *, context: str) -> str:
        version, _, encoded = sealed.partition(".")
        if version != _VERSION:
            raise SecretUnreadableError("Unknown sealed-secret version.")
        try:
            raw = base64.urlsafe_b64decode(encoded.encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnreadableError("The endpoint secret cannot be opened.") from None
        return plain.decode()
