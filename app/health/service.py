"""What ``/v1/health`` reports: every dependency and background part, read in one pass; and
the heartbeats the workers' periodic jobs leave for it.

Fast by design: a database ping, a broker ping, a few indexed reads (``app.health.repository``),
and the signer's balance cached for a few seconds (``app.health.gas``). The rules that turn the
readings into a verdict are ``app.health.verdict``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eth_account import Account
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.attention import service as attention
from app.db.models.health import JobHeartbeat
from app.db.models.transfers import ChainWatcher
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.health import repository
from app.health.gas import GasProbe
from app.health.schemas import (
    AttentionSummary,
    DependencyState,
    Health,
    JobView,
    OldestWork,
    SchedulerView,
    SignerNetworkView,
    SignerView,
    WebhookDeliveryView,
)
from app.health.verdict import (
    SIGNER_JOB,
    WEBHOOK_JOB,
    Clock,
    job_views,
    reasons,
    scheduler_view,
    signer_status,
)
from app.settings import Settings
from app.transfers import service as transfers
from app.transfers.schemas import watcher_view

CHECK_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class JobRun:
    """One finished run of a periodic job, as its worker saw it."""

    job: str
    queue: str
    every_seconds: float
    sent_at: datetime
    finished_at: datetime
    queue_delay_ms: int
    error: str | None = None


async def record_run(session: UnitOfWork, run: JobRun) -> None:
    """Write the job's heartbeat: one upsert, safe with any number of workers at once."""
    common: dict[str, Any] = {
        "queue": run.queue, "every_seconds": run.every_seconds, "last_sent_at": run.sent_at,
        "updated_at": run.finished_at,
    }
    if run.error is None:
        outcome: dict[str, Any] = {"last_success_at": run.finished_at,
                                   "last_queue_delay_ms": run.queue_delay_ms}
    else:
        outcome = {"last_failure_at": run.finished_at, "last_error": run.error[:200]}
    await repository.upsert_heartbeat(session, run.job, common, outcome)


async def _database(rt: HealthProbe) -> DependencyState:
    try:
        async with rt.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the type goes in the detail
        return DependencyState("down", type(exc).__name__)
    return DependencyState("ok", "sqlite" if rt.settings.is_sqlite else "postgresql")


async def _broker(rt: HealthProbe) -> DependencyState:
    if rt.redis is None:
        return DependencyState("ok", "embedded (in-process; the background runs in `serve`)")
    try:
        await asyncio.wait_for(rt.redis.ping(), CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "down"
        return DependencyState("down", type(exc).__name__)
    return DependencyState("ok", "redis")


@dataclass
class _Stored:
    """What the background left in the database (None: it could not be read)."""

    beats: list[JobHeartbeat] | None = None
    watchers: dict[str, ChainWatcher] | None = None
    payment: repository.Oldest | None = None
    webhook: repository.Oldest | None = None
    parked: dict[str, int] | None = None


async def _stored(rt: HealthProbe) -> _Stored:
    found = _Stored()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), rt.sessions() as session:
            found.beats = await repository.heartbeats(session)
            found.watchers = await transfers.watcher_states(session, list(rt.settings.networks()))
            found.payment = await repository.oldest_unsettled_payment(session)
            found.webhook = await repository.oldest_undelivered_webhook(session)
            found.parked = await attention.parked_by_kind(session)
    except Exception:  # the database check reports the failure; nothing to add per part
        return found
    return found


async def _gas(rt: HealthProbe) -> tuple[str | None, list[SignerNetworkView]]:
    key = rt.settings.chain_signer_private_key
    if key is None:
        return None, []
    try:
        address = str(Account.from_key(key.get_secret_value()).address)
    except (ValueError, TypeError):  # `passgate serve` refuses such a key at start
        return None, []
    networks = list(rt.settings.networks().values())
    readings = await asyncio.gather(*(rt.gas.read(network, address) for network in networks))
    return address, [
        SignerNetworkView(
            network=network.name,
            gas_balance_wei=None if r.balance_wei is None else str(r.balance_wei),
            minimum_wei=None if r.minimum_wei is None else str(r.minimum_wei),
            funded=r.funded, error=r.error,
        )
        for network, r in zip(networks, readings, strict=True)
    ]


def _oldest(found: repository.Oldest | None, clock: Clock) -> OldestWork | None:
    if found is None:
        return None
    return OldestWork(id=found.id, status=found.status, created_at=rfc3339(found.created_at) or "",
                      age_seconds=clock.age(found.created_at) or 0.0)


def _job(jobs: list[JobView], name: str) -> JobView | None:
    return next((job for job in jobs if job.name == name), None)


@dataclass
class HealthProbe:
    """The process's view of what health reads (built once per app)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[UnitOfWork]
    redis: Any = None  # redis.asyncio.Redis when configured
    gas: GasProbe = field(default_factory=GasProbe)
    # When this process started: health gives the background that long to show up.
    started_at: float = field(default_factory=time.monotonic)

    async def report(self) -> Health:
        """The whole report; ``reasons`` is empty when everything that should run does."""
        rt = self
        database, broker, stored, (address, gas) = await asyncio.gather(
            _database(rt), _broker(rt), _stored(rt), _gas(rt)
        )
        clock = Clock(now=utcnow(), uptime_seconds=time.monotonic() - rt.started_at,
                      stale_after_seconds=rt.settings.health_stale_after_seconds)
        networks = rt.settings.networks()
        watchers = stored.watchers if stored.watchers is not None else {}
        chains = [watcher_view(net, watchers.get(name), clock.now,
                               rt.settings.chain_unhealthy_after_seconds)
                  for name, net in networks.items()]
        jobs = job_views(stored.beats, clock) if stored.beats is not None else []
        scheduler = scheduler_view(stored.beats, clock) if stored.beats is not None else None
        signer_job, webhook_job = _job(jobs, SIGNER_JOB), _job(jobs, WEBHOOK_JOB)
        signer = SignerView(
            status=signer_status(signer_job, networks_enabled=bool(networks),
                                 configured=address is not None, gas=gas),
            configured=address is not None, address=address,
            last_success_at=signer_job.last_success_at if signer_job else None,
            age_seconds=signer_job.age_seconds if signer_job else None,
            networks=gas, oldest_unsettled_payment=_oldest(stored.payment, clock),
        )
        webhooks = WebhookDeliveryView(
            status=webhook_job.status if webhook_job else "unknown",
            last_success_at=webhook_job.last_success_at if webhook_job else None,
            age_seconds=webhook_job.age_seconds if webhook_job else None,
            oldest_undelivered=_oldest(stored.webhook, clock),
        )
        parked = (None if stored.parked is None
                  else AttentionSummary(open=sum(stored.parked.values()), by_kind=stored.parked))
        why = reasons(database=database, broker=broker, chains=chains, jobs=jobs,
                      scheduler=scheduler, signer=signer, clock=clock, attention=parked)
        return Health(
            status="degraded" if why else "ok", reasons=why, database=database, broker=broker,
            chains=chains, signer=signer, webhooks=webhooks,
            scheduler=scheduler or SchedulerView("unknown", None, None), jobs=jobs,
            attention=parked,
        )

    async def close(self) -> None:
        await self.gas.close()
