"""A short-lived per-process cache of verified keys.

Entries live ``key_cache_seconds`` (1 s by default): a revocation made in any process takes
effect everywhere within that time, while a busy key costs one database read per second
instead of one per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from app.auth.principal import Principal


class KeyCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        """``(hit, principal)``; a cached ``None`` remembers an unknown key."""
        found = self._entries.get(digest)
        if found is None:
            return False, None
        stored_at, principal = found
        if time.monotonic() - stored_at > self.ttl:
            del self._entries[digest]
            return False, None
        return True, principal

    def put(self, digest: str, principal: Principal | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[digest] = (time.monotonic(), principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """Drop every cached secret of one key (this process learns of a change at once)."""
        stale = [d for d, (_, p) in self._entries.items() if p is not None and p.key_id == key_id]
        for digest in stale:
            del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()
