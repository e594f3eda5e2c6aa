"""The long-lived objects one process shares between requests (built by the app factory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.auth.access import Access
from app.auth.broadcast import KeyChangeBroadcast
from app.auth.cache import KeyCache
from app.auth.service import Authenticator
from app.catalog.discovery import Discovery
from app.db.engine import create_engine, session_factory
from app.db.uow import UnitOfWork
from app.gateway.service import Gateway
from app.health.metrics_state import StateReader
from app.health.service import HealthProbe
from app.jobs import JobQueue, LazyBroker
from app.metrics.exposition import leave_live_gauges
from app.payments.networks import PaymentChain
from app.payments.service import Payments
from app.payments.waiter import SettlementWaiter
from app.ratelimit.limiter import RateLimiter
from app.redis_clients import async_client
from app.settings import Settings
from app.siwx.service import WalletSignIns
from app.webhooks.options import WebhookOptions
from app.webhooks.tasks import WebhookOutbox


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[UnitOfWork]
    limiter: RateLimiter
    auth: Authenticator
    state: StateReader
    jobs: JobQueue
    payments: Payments
    gateway: Gateway
    health: HealthProbe
    discovery: Discovery
    # The webhook policy (SSRF guard, sealing key, limits), derived once from the settings.
    webhook_options: WebhookOptions
    # Sign-in-with-x (``SIGN-IN-WITH-X``): what the key-holder guards call without a key.
    wallet_sign_ins: WalletSignIns
    redis: Any = None  # redis.asyncio.Redis when configured
    # Key changes to and from the other processes, with Redis (app.auth.broadcast).
    key_changes: KeyChangeBroadcast | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        broker = LazyBroker(settings)
        jobs = JobQueue(broker, close=broker.close)
        cache = KeyCache(settings.key_cache_seconds,
                         broadcast_ttl_seconds=settings.key_cache_broadcast_seconds)
        key_changes = (None if settings.embedded else
                       KeyChangeBroadcast(settings.redis_url, settings.redis_prefix, cache))
        # Events emitted in a request are fanned out (and jobs sent) once it commits.
        # Without the broadcast (one process) a committed key change is dropped here only.
        sessions = session_factory(engine, jobs=jobs, events=WebhookOutbox(jobs),
                                   key_changes=key_changes or cache)
        redis = None if settings.embedded else async_client(settings.redis_url)
        payments = Payments(PaymentChain(settings), SettlementWaiter(redis, settings.redis_prefix),
                            redis, settings.redis_prefix)
        gateway = Gateway(settings, sessions, payments)
        if gateway.leases is not None:
            cache.on_change.append(gateway.leases.retire)
        auth = Authenticator(settings, sessions, cache)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            limiter=RateLimiter.from_settings(settings),
            auth=auth,
            state=StateReader(settings, sessions, redis, broker),
            redis=redis,
            key_changes=key_changes,
            jobs=jobs,
            payments=payments,
            gateway=gateway,
            health=HealthProbe(settings, engine, sessions, redis),
            discovery=Discovery(settings, payments, gateway),
            webhook_options=WebhookOptions.from_settings(settings),
            wallet_sign_ins=WalletSignIns(settings, sessions, auth),
        )

    @property
    def access(self) -> Access:
        """What the access hooks read (``app.auth.access``)."""
        return Access(self.settings, self.auth, self.limiter, self.wallet_sign_ins)

    @property
    def pepper(self) -> str:
        return self.settings.key_pepper.get_secret_value()

    def start(self) -> None:
        """What runs for as long as the API serves (in its event loop); idempotent."""
        if self.key_changes is not None:
            self.key_changes.start()

    async def close(self) -> None:
        if self.key_changes is not None:
            await self.key_changes.close()
        await self.limiter.close()
        await self.auth.close()
        await self.payments.close()
        await self.gateway.aclose()
        leave_live_gauges()
        await self.health.close()
        await self.engine.dispose()
        self.jobs.close()
        if self.redis is not None:
            await self.redis.aclose()
