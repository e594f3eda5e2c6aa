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


class MemoDigest:
    """A keyed BLAKE2b of a secret, for in-memory lookups only (the key cache).

    The per-request path needs a digest to find a verified key in memory without keeping the
    secret itself; keyed BLAKE2b is one C call, several times cheaper than the HMAC above. Its
    key is derived from the pepper, so a heap dump shows neither secrets nor stored hashes.
    """

    def __init__(self, pepper: str) -> None:
        key = hashlib.sha256(b"passgate-memo-digest:" + pepper.encode()).digest()
        # Keyed once; copying the keyed state is cheaper than keying again per call.
        self._keyed = hashlib.blake2b(key=key, digest_size=16)

    def __call__(self, key: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(key.encode())
        return mac.digest()
