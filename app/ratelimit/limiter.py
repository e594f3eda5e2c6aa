"""Per-key (and per-IP) fixed-window rate limits, shared by every API process.

Counters live in the ``limits`` library's storage: Redis when ``PASSGATE_REDIS_URL`` is set,
memory only in the embedded single-process mode. On top of its atomic ``incr`` we lease
tokens: a process takes a small block of a window's budget with one INCRBY and hands it out
locally. A key with 60 requests/minute leases one token at a time (exact, one round trip per
request); a key with a million leases a hundred, so hot keys cost Redis one round trip per
hundred requests. Leased tokens count against the window at once, so processes together never
admit more than the limit; tokens a process leased but did not use before the window ends are
lost, which can under-admit by at most (processes x 2 x lease size), capped at 2% of the limit.

Keys with leases of ten or more tokens (limits from 1,000 per window) lease ahead: when half a
lease is left, the next one is fetched in the background, so a busy key's requests do not all
wait on the Redis round trip when the lease runs dry. Small limits never lease ahead, so they
stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from app.background import BackgroundTasks
from app.http.rate_limit_headers import RateState
from app.redis_clients import async_blocking_pool
from app.settings import Settings

log = logging.getLogger("passgate.ratelimit")

MINUTE = 60
DAY = 86_400

MAX_LEASE = 100
MAX_TRACKED = 100_000
LEASE_AHEAD_MIN = 10


@dataclass(slots=True)
class _Lease:
    window_start: int
    available: int
    # The shared counter as of the last lease: the basis of the Remaining header.
    counted: int
    # Tokens taken from the shared counter per round trip (``lease_size`` of the limit).
    want: int = 1
    # The store round trip in flight for this window, if any: a burst on one key waits for
    # that one lease instead of sending a round trip per request (single flight).
    fetching: asyncio.Future[None] | None = None
    # The shared counter reached the limit: nothing more can be granted in this window (the
    # counter only grows), so later requests are refused without a round trip.
    exhausted: bool = False


def lease_size(limit: int) -> int:
    return max(1, min(MAX_LEASE, limit // 100))


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        self._ahead = BackgroundTasks(log, "rate-limit lease-ahead")

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if settings.embedded:
            return cls(MemoryStorage())
        # A blocking pool makes a burst wait for a connection instead of failing; its
        # connections reconnect on first use after a Redis restart (app.redis_clients).
        pool = async_blocking_pool(settings.redis_url, max_connections=64, timeout=5)
        storage = RedisStorage(
            "async+" + settings.redis_url, implementation="redispy",
            key_prefix=f"{settings.redis_prefix}:rl",
            # limits types its pass-through client options narrowly; the pool is passed on as is.
            connection_pool=pool,  # type: ignore[arg-type]
        )
        return cls(storage)

    def _lease(self, name: str, limit: int, start: int) -> _Lease:
        # Keyed by the limit too: a limit raised mid-window starts a fresh local lease.
        local = f"{name}:{limit}"
        lease = self._leases.get(local)
        if lease is None or lease.window_start != start:
            lease = _Lease(window_start=start, available=0, counted=0, want=lease_size(limit))
            self._leases[local] = lease
            self._leases.move_to_end(local)
            if len(self._leases) > MAX_TRACKED:
                self._leases.popitem(last=False)
        return lease

    def _grant(self, lease: _Lease, name: str, limit: int, window: int) -> RateState:
        lease.available -= 1
        want = lease.want
        if (
            want >= LEASE_AHEAD_MIN
            and lease.available < want // 2
            and lease.fetching is None
            and not lease.exhausted
        ):
            # A failed lease-ahead is not an error for anyone yet: the next request that finds
            # the lease empty fetches again in the foreground and reports the failure.
            self._ahead.spawn(self._refill(lease, name, lease.window_start, limit, window))
        remaining = max(0, limit - lease.counted + lease.available)
        return RateState(limit=limit, remaining=remaining,
                         reset_at=float(lease.window_start + window), allowed=True)

    async def _take(self, name: str, limit: int, window: int) -> RateState:
        start = int(time.time() // window) * window
        lease = self._lease(name, limit, start)
        if lease.available > 0:
            # The common case: a token is in hand, no await at all.
            return self._grant(lease, name, limit, window)
        while lease.available <= 0 and lease.fetching is not None:
            await asyncio.shield(lease.fetching)
        if lease.available <= 0 and not lease.exhausted:
            await self._refill(lease, name, start, limit, window)
        if lease.available <= 0:
            reset_at = float(start + window)
            return RateState(limit=limit, remaining=0, reset_at=reset_at, allowed=False)
        return self._grant(lease, name, limit, window)

    async def _refill(self, lease: _Lease, name: str, start: int, limit: int, window: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lease.fetching = done
        try:
            want = lease_size(limit)
            count = await self.storage.incr(f"{name}:{start}", window + 1, amount=want)
            granted = max(0, min(want, limit - (count - want)))
            lease.available += granted
            lease.counted = max(lease.counted, min(count, limit))
            lease.exhausted = count >= limit and granted < want
        finally:
            lease.fetching = None
            done.set_result(None)

    def check_now(
        self, scope: str, subject: str, per_minute: int, per_day: int | None
    ) -> RateState | None:
        """``check`` without an await, for when every window involved has a leased token in
        hand (the usual case for a busy key); None means nothing was counted: ``await
        check(...)``. Both windows are looked at before either is charged, so falling back
        never charges a window twice."""
        now = time.time()
        minute_name = f"{scope}:{subject}:m"
        minute = self._in_hand(minute_name, per_minute, MINUTE, now)
        if minute is None:
            return None
        if per_day is None:
            return self._grant(minute, minute_name, per_minute, MINUTE)
        day_name = f"{scope}:{subject}:d"
        day = self._in_hand(day_name, per_day, DAY, now)
        if day is None:
            return None
        minute_state = self._grant(minute, minute_name, per_minute, MINUTE)
        day_state = self._grant(day, day_name, per_day, DAY)
        return minute_state if minute_state.remaining <= day_state.remaining else day_state

    def _in_hand(self, name: str, limit: int, window: int, now: float) -> _Lease | None:
        lease = self._leases.get(f"{name}:{limit}")
        if lease is None or lease.available <= 0:
            return None
        return lease if lease.window_start == int(now // window) * window else None

    async def check(
        self, scope: str, subject: str, per_minute: int, per_day: int | None
    ) -> RateState:
        """Count one request against the minute (and day) window of ``subject``.

        The day window is only charged when the minute window admitted the request, so a
        burst of rejected calls does not eat the daily allowance.
        """
        minute = await self._take(f"{scope}:{subject}:m", per_minute, MINUTE)
        if not minute.allowed or per_day is None:
            return minute
        day = await self._take(f"{scope}:{subject}:d", per_day, DAY)
        if not day.allowed:
            return day
        return minute if minute.remaining <= day.remaining else day

    async def ping(self) -> bool:
        return bool(await self.storage.check())

    async def close(self) -> None:
        """Let lease-ahead fetches in flight finish (they are one bounded round trip each)."""
        await self._ahead.close()

    async def reset(self) -> None:
        self._leases.clear()
        await self.storage.reset()
