"""Keys are stored only as SHA-256 keyed with the server pepper (HMAC)."""

from __future__ import annotations

import hashlib
import hmac


def key_hash(pepper: str, key: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
