"""The long-lived objects one process shares between requests (built by the app factory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.cache import KeyCache
from app.auth.service import Authenticator
from app.db.engine import create_engine, session_factory
from app.ratelimit.limiter import RateLimiter
from app.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    auth: Authenticator
    redis: Any = None  # redis.asyncio.Redis when configured

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        sessions = session_factory(engine)
        cache = KeyCache(settings.key_cache_seconds)
        redis = None
        if not settings.embedded:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            limiter=RateLimiter.from_settings(settings),
            auth=Authenticator(settings, sessions, cache),
            redis=redis,
        )

    @property
    def pepper(self) -> str:
        return self.settings.key_pepper.get_secret_value()

    async def close(self) -> None:
        await self.engine.dispose()
        if self.redis is not None:
            await self.redis.aclose()
