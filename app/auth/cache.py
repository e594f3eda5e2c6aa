"""A short-lived per-process cache of verified keys.

An entry is served for ``key_cache_seconds`` (1 s by default) counted from the moment its
database read *started*, so a revocation committed in any process takes effect everywhere
within that time. A hot key is re-read in the background once its entry is half that old, so
its requests never wait on the database; a key idle for longer than the TTL is read in the
foreground.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import NamedTuple

from app.auth.principal import Principal


class _Entry(NamedTuple):
    # Monotonic seconds: when the database read started, when to re-read it in the
    # background, when it may no longer be served.
    read_at: float
    refresh_at: float
    expires_at: float
    principal: Principal | None


class KeyCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Bumped by every local invalidation, so a read that started before it cannot put a
        # stale principal back after it.
        self.generation = 0

    def get(self, digest: bytes) -> tuple[Principal | None, bool] | None:
        """None on a miss; else the principal (None remembers an unknown key) and whether the
        entry is past half its life and should be re-read in the background."""
        found = self._entries.get(digest)
        if found is None:
            return None
        now = time.monotonic()
        if now >= found.expires_at:
            del self._entries[digest]
            return None
        return found.principal, now >= found.refresh_at

    def put(
        self, digest: bytes, principal: Principal | None, read_at: float, generation: int
    ) -> None:
        if self.ttl <= 0 or generation != self.generation:
            return
        current = self._entries.get(digest)
        if current is not None and current.read_at > read_at:
            return  # a newer read already landed
        self._entries[digest] = _Entry(
            read_at, read_at + self.ttl / 2, read_at + self.ttl, principal
        )
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """Drop every cached secret of one key (this process learns of a change at once)."""
        self.generation += 1
        stale = [
            d for d, entry in self._entries.items()
            if entry.principal is not None and entry.principal.key_id == key_id
        ]
        for digest in stale:
            del self._entries[digest]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
