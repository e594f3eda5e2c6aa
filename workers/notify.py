"""The worker side of settlement notifications: a Redis client per worker loop, if any."""

from __future__ import annotations

from typing import Any

from workers.context import WorkerContext


def redis_of(ctx: WorkerContext) -> Any:
    """``redis.asyncio.Redis`` for publishing, or None in the embedded mode (the in-process
    hub wakes the API's waiters directly)."""
    if ctx.settings.embedded:
        return None

    def build() -> Any:
        from redis.asyncio import Redis

        return Redis.from_url(ctx.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)

    async def close(client: Any) -> None:
        await client.aclose()

    return ctx.resource("notify_redis", build, close)
