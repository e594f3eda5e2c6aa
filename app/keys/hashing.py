"""Keys are stored only as SHA-256 keyed with the server pepper (HMAC)."""

from __future__ import annotations

import hashlib
import hmac


def key_hash(pepper: str, key: str) -> str:
    return hmac.digest(pepper.encode(), key.encode(), "sha256").hex()


class PepperedHash:
    """``key_hash`` with the pepper keyed once, for the per-request path: copying a keyed HMAC
    skips re-deriving its pads and OpenSSL's digest lookup, which cost more than the hash."""

    def __init__(self, pepper: str) -> None:
        self._mac = hmac.new(pepper.encode(), digestmod=hashlib.sha256)

    def __call__(self, key: str) -> str:
        mac = self._mac.copy()
        mac.update(key.encode())
        return mac.hexdigest()
