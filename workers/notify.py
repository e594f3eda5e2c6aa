"""The worker side of settlement notifications: a Redis client per worker loop, if any."""

from __future__ import annotations

from typing import Any

from app.redis_clients import async_client
from workers.actor_context import WorkerContext


def redis_of(ctx: WorkerContext) -> Any:
    """``redis.asyncio.Redis`` for publishing, or None in the embedded mode (the in-process
    hub wakes the API's waiters directly)."""
    if ctx.settings.embedded:
        return None

    def build() -> Any:
        return async_client(ctx.settings.redis_url)

    async def close(client: Any) -> None:
        await client.aclose()

    return ctx.resource("notify_redis", build, close)
