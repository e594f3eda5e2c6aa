"""Per-key (and per-IP) rate limits on the ``limits`` library.

Redis storage when ``PASSGATE_REDIS_URL`` is set, so every API process shares the counters;
memory storage only in the embedded single-process mode. Fixed windows: one atomic INCR per
window per request, which keeps the check to one Redis round trip per window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

from app.settings import Settings


@dataclass(frozen=True, slots=True)
class RateState:
    """What the response headers report: the tightest window."""

    limit: int
    remaining: int
    reset_epoch: int
    allowed: bool

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_epoch - time.time()))


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategy = FixedWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if settings.embedded:
            return cls(MemoryStorage())
        uri = "async+" + settings.redis_url
        return cls(RedisStorage(uri, implementation="redispy", key_prefix=f"{settings.redis_prefix}:rl"))

    async def _hit(self, item: RateLimitItem, scope: str, subject: str) -> RateState:
        allowed = await self._strategy.hit(item, scope, subject)
        stats = await self._strategy.get_window_stats(item, scope, subject)
        return RateState(
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_epoch=math.ceil(stats.reset_time),
            allowed=allowed,
        )

    async def check(
        self, scope: str, subject: str, per_minute: int, per_day: int | None
    ) -> RateState:
        """Count one request against the minute (and day) window of ``subject``.

        The day window is only charged when the minute window admitted the request, so a
        burst of rejected calls does not eat the daily allowance.
        """
        minute = await self._hit(RateLimitItemPerMinute(per_minute), scope, subject)
        if not minute.allowed or per_day is None:
            return minute
        day = await self._hit(RateLimitItemPerDay(per_day), scope, subject)
        if not day.allowed:
            return day
        return minute if minute.remaining <= day.remaining else day

    async def ping(self) -> bool:
        return bool(await self.storage.check())

    async def reset(self) -> None:
        await self.storage.reset()
