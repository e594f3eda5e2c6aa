"""Key changes broadcast over Redis pub/sub, so that every API process drops a changed key.

A process that commits a change to a key, or to an agent or platform (which changes all of its
keys), publishes that id on ``<prefix>:auth:key-changes`` once the transaction has committed;
every API process subscribes and drops the matching cache entries (and the gateway the matching
credit leases) as the message arrives; ``null`` (every key) is still understood. Workers
publish too (a reorg revoking a pass key), without a cache of their own.

The subscription proves itself: it PINGs Redis every ``PING_SECONDS`` and counts as live only
while something (a message, a PONG) arrived within ``LIVE_SECONDS`` and since the moment its
current subscription was confirmed. The cache (``app.auth.cache``) serves an entry for the long
lifetime only while live and only if the entry was read after that confirmation; otherwise for
the short one. So a message lost to an outage (of Redis, or of this subscriber's connection)
can keep a revoked key alive for at most ``LIVE_SECONDS`` + ``key_cache_seconds``. A publish
that fails while the subscribers still see Redis is logged; its change then reaches the other
processes when their entries lapse (``key_cache_broadcast_seconds`` at most).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from app.auth.cache import KeyCache
from app.redis_clients import async_client

log = logging.getLogger("passgate.auth")

PING_SECONDS = 0.5
LIVE_SECONDS = 2.0
RECONNECT_SECONDS = 0.5
PUBLISH_SECONDS = 2.0
_PING = "passgate-key-changes"


class KeyChangeBroadcast:
    def __init__(self, redis_url: str, prefix: str, cache: KeyCache | None = None) -> None:
        self._client = async_client(redis_url)
        self.channel = f"{prefix}:auth:key-changes"
        self._origin = uuid.uuid4().hex
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._subscribed_at: float | None = None
        self._heard_at = -math.inf
        if cache is not None:
            cache.live_since = self.live_since
            cache.publisher = self.publish

    def live_since(self) -> float | None:
        """When the current subscription was confirmed, while Redis is heard; else None."""
        since = self._subscribed_at
        if since is None or time.monotonic() - self._heard_at > LIVE_SECONDS:
            return None
        return since

    async def publish(self, key_ids: Sequence[str | None]) -> None:
        """Tell every process that these keys (None: all keys) changed. Never raises: the
        change is committed; a lost message is bounded by the cache lifetimes."""
        payload = json.dumps({"origin": self._origin, "keys": list(key_ids)})
        try:
            await asyncio.wait_for(self._client.publish(self.channel, payload), PUBLISH_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("key change broadcast failed (%s); other processes follow within "
                        "the key cache lifetime", type(exc).__name__)

    async def keys_changed(self, key_ids: Sequence[str | None]) -> None:
        """The unit of work's sink: drop here, then tell the others."""
        if self._cache is not None:
            self._apply(key_ids)
        await self.publish(key_ids)

    def start(self) -> None:
        """Subscribe in the background (the running loop's), once; only with a cache."""
        if self._cache is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            # A cancellation that lands inside redis-py's read timeout may come out as a
            # TimeoutError, which the loop survives; the flag ends it then.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=RECONNECT_SECONDS + PING_SECONDS + 1)
            self._task = None
        await self._client.aclose()

    def _apply(self, key_ids: Sequence[str | None]) -> None:
        assert self._cache is not None
        for key_id in key_ids:
            if key_id is None:
                self._cache.clear_local()
            else:
                self._cache.drop_local(key_id)

    async def _listen(self) -> None:
        """Stay subscribed for the life of the process; each attempt is bounded by Redis
        answering (a silent Redis is given up after ``LIVE_SECONDS``)."""
        lost = False
        while not self._closing:
            try:
                await self._subscribed()
            except (RedisError, OSError, TimeoutError) as exc:
                if self._closing:
                    return
                if not lost:
                    log.warning("key change subscription lost (%s); keys are cached for "
                                "key_cache_seconds until it is back", type(exc).__name__)
                lost = True
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _subscribed(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            # This attempt's clock: no live subscription yet, so nothing is served long.
            self._heard_at = next_ping = time.monotonic()
            while not self._closing:
                now = time.monotonic()
                if now >= next_ping:
                    await pubsub.ping(_PING)
                    next_ping = now + PING_SECONDS
                if now - self._heard_at > LIVE_SECONDS:
                    raise TimeoutError("Redis stopped answering the subscription")
                message = await pubsub.get_message(timeout=PING_SECONDS)
                if message is not None:
                    self._heard(message)
        finally:
            self._subscribed_at = None
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _heard(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        self._heard_at = now
        kind = message["type"]
        if kind == "subscribe":
            # (Re)subscribed, also after redis-py reconnected by itself: whatever was published
            # before now may have been missed, so only entries read from now on live long.
            if self._subscribed_at is None:
                log.info("key change subscription live on %s", self.channel)
            self._subscribed_at = now
        elif kind == "message":
            keys: list[str | None] = [None]  # unreadable: assume the worst, everything changed
            try:
                body = json.loads(message["data"])
                if body["origin"] == self._origin:
                    return  # this process dropped its entries when it committed
                keys = [k if isinstance(k, str) else None for k in body["keys"]]
            except (ValueError, KeyError, TypeError):
                pass
            self._apply(keys)
