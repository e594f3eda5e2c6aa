"""A per-process cache of verified keys, with a lifetime bounded by how changes reach it.

A change to a key (revoked, regenerated, expired, scopes or limits changed) or to its agent or
platform (disabled, plan) drops the entry in the process that made it, at once. Other
processes learn of it in one of two ways:

- with Redis, the change is broadcast (``app.auth.broadcast``) and every process drops the
  entry within a round trip; an entry then lives ``key_cache_broadcast_seconds`` (60 s by
  default), but only while this process's subscription is confirmed live and only if the
  entry was read after that subscription began, so a message missed during an outage can
  never keep a key alive;
- otherwise (no Redis, or the subscription lost), an entry lives ``key_cache_seconds`` (1 s).

Lifetimes count from the moment the database read *started*. A hot key is re-read in the
background once its entry is half that old, so its requests never wait on the database; a key
idle for longer is read in the foreground.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from app.auth.principal import Principal

# What changed, by id: a key (``key_...``), or an agent's (``agt_...``) or a platform's
# (``plt_...``) every key; None: every key there is.
Publisher = Callable[[Sequence[str | None]], Awaitable[None]]


def _never_live() -> float | None:
    return None


class _Entry(NamedTuple):
    read_at: float  # monotonic seconds: when the database read started
    principal: Principal | None


class KeyCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 50_000,
                 broadcast_ttl_seconds: float | None = None) -> None:
        self.ttl = ttl_seconds
        self.broadcast_ttl = max(ttl_seconds, broadcast_ttl_seconds or 0.0)
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Bumped by every invalidation, so a read that started before it cannot put a stale
        # principal back after it.
        self.generation = 0
        # Set by the broadcast: since when changes are surely heard (None: they may not be),
        # and how this process tells the others of a change.
        self.live_since: Callable[[], float | None] = _never_live
        self.publisher: Publisher | None = None
        # Called with each change dropped here (made here or heard from another process): the
        # gateway retires the credit leases of a changed agent or platform then.
        self.on_change: list[Callable[[str | None], None]] = []

    def lifetime(self, read_at: float) -> float:
        """How long an entry read at ``read_at`` may be served, as things stand now."""
        since = self.live_since()
        return self.broadcast_ttl if since is not None and read_at >= since else self.ttl

    def get(self, digest: bytes) -> tuple[Principal | None, bool] | None:
        """None on a miss; else the principal (None remembers an unknown key) and whether the
        entry is past half its life and should be re-read in the background."""
        found = self._entries.get(digest)
        if found is None:
            return None
        age = time.monotonic() - found.read_at
        ttl = self.lifetime(found.read_at)
        if age >= ttl:
            del self._entries[digest]
            return None
        return found.principal, age >= ttl / 2

    def put(
        self, digest: bytes, principal: Principal | None, read_at: float, generation: int
    ) -> None:
        if self.ttl <= 0 or generation != self.generation:
            return
        current = self._entries.get(digest)
        if current is not None and current.read_at > read_at:
            return  # a newer read already landed
        self._entries[digest] = _Entry(read_at, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, owner_id: str) -> Awaitable[None] | None:
        """Drop every cached secret of a key, or of every key of an agent or a platform (by
        its id) here, and tell the other processes (awaited by the unit of work that committed
        the change). Only what changed is dropped: a platform changing its own agents must not
        empty every process's cache, and retire every credit lease, of everyone else."""
        self.drop_local(owner_id)
        return self.publisher([owner_id]) if self.publisher else None

    async def keys_changed(self, key_ids: Sequence[str | None]) -> None:
        """The unit of work's sink where nothing is broadcast (one process): drop here."""
        for key_id in key_ids:
            if key_id is None:
                self.clear_local()
            else:
                self.drop_local(key_id)

    def drop_local(self, owner_id: str) -> None:
        """Drop the entries of a key, or of an agent's or a platform's keys."""
        self.generation += 1
        stale = [d for d, entry in self._entries.items() if _owned(entry.principal, owner_id)]
        for digest in stale:
            del self._entries[digest]
        for callback in self.on_change:
            callback(owner_id)

    def clear_local(self) -> None:
        self.generation += 1
        self._entries.clear()
        for callback in self.on_change:
            callback(None)


def _owned(principal: Principal | None, owner_id: str) -> bool:
    return principal is not None and owner_id in (
        principal.key_id, principal.agent_id, principal.platform_id)
