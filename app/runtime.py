"""The long-lived objects one process shares between requests (built by the app factory)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.auth.cache import KeyCache
from app.auth.service import Authenticator
from app.db.engine import create_engine, session_factory
from app.db.uow import UnitOfWork
from app.gateway.service import Gateway
from app.health.gas import GasProbe
from app.jobs import JobQueue
from app.metrics.state import StateReader
from app.ratelimit.limiter import RateLimiter
from app.redis_clients import async_client
from app.settings import Settings
from app.webhooks.tasks import WebhookOutbox
from workers.broker import LazyBroker


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[UnitOfWork]
    limiter: RateLimiter
    auth: Authenticator
    state: StateReader
    redis: Any = None  # redis.asyncio.Redis when configured
    jobs: JobQueue | None = None
    # app.payments.service.Payments, created on first use (see app.payments.runtime).
    payments: Any = None
    gateway: Gateway | None = None
    gas: GasProbe = field(default_factory=GasProbe)
    # When this process built its runtime: health gives the background that long to show up.
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        broker = LazyBroker(settings)
        jobs = JobQueue(broker, close=broker.close)
        # Events emitted in a request are fanned out (and jobs sent) once it commits.
        sessions = session_factory(engine, jobs=jobs, events=WebhookOutbox(jobs))
        cache = KeyCache(settings.key_cache_seconds)
        redis = None if settings.embedded else async_client(settings.redis_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            limiter=RateLimiter.from_settings(settings),
            auth=Authenticator(settings, sessions, cache),
            state=StateReader(settings, sessions, redis, broker),
            redis=redis,
            jobs=jobs,
            gateway=Gateway(settings, sessions),
        )

    @property
    def pepper(self) -> str:
        return self.settings.key_pepper.get_secret_value()

    async def close(self) -> None:
        await self.limiter.close()
        await self.auth.close()
        if self.payments is not None:
            await self.payments.close()
        if self.gateway is not None:
            await self.gateway.aclose()
        await self.gas.close()
        await self.engine.dispose()
        if self.jobs is not None:
            self.jobs.close()
        if self.redis is not None:
            await self.redis.aclose()
