"""Keys are stored only as SHA-256 keyed with the server pepper (HMAC)."""

from __future__ import annotations

import hmac


def key_hash(pepper: str, key: str) -> str:
    # hmac.digest is the one-shot C path: no HMAC object per call (it runs on every request).
    return hmac.digest(pepper.encode(), key.encode(), "sha256").hex()
