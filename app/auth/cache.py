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


class Lookup(NamedTuple):
    hit: bool
    principal: Principal | None
    # The entry is past half its life: re-read it in the background.
    refresh: bool


_MISS = Lookup(False, None, False)


class KeyCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        # Bumped by every local invalidation, so a read that started before it cannot put a
        # stale principal back after it.
        self.generation = 0

    def get(self, digest: str) -> Lookup:
        """A cached ``None`` remembers an unknown key."""
        found = self._entries.get(digest)
        if found is None:
            return _MISS
        read_at, principal = found
        age = time.monotonic() - read_at
        if age > self.ttl:
            del self._entries[digest]
            return _MISS
        return Lookup(True, principal, age > self.ttl / 2)

    def put(
        self, digest: str, principal: Principal | None, read_at: float, generation: int
    ) -> None:
        if self.ttl <= 0 or generation != self.generation:
            return
        current = self._entries.get(digest)
        if current is not None and current[0] > read_at:
            return  # a newer read already landed
        self._entries[digest] = (read_at, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """Drop every cached secret of one key (this process learns of a change at once)."""
        self.generation += 1
        stale = [d for d, (_, p) in self._entries.items() if p is not None and p.key_id == key_id]
        for digest in stale:
            del self._entries[digest]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
