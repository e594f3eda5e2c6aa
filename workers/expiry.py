"""Scheduled expiry: time-limited keys and payments that can no longer settle.

Both jobs are idempotent (conditional updates) and safe to run twice or concurrently.
"""

from __future__ import annotations

import dramatiq

from app.db.hooks import commit
from app.db.types import utcnow
from app.keys.service import expire_due as expire_keys_due
from app.payments.service import expire_due as expire_payments_due
from workers import context
from workers.notify import redis_of
from workers.schedule import periodic

QUEUE = "maintenance"
KEYS_EVERY_SECONDS = 15.0
PAYMENTS_EVERY_SECONDS = 30.0


@periodic(KEYS_EVERY_SECONDS)
@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=60_000)
async def expire_keys() -> None:
    """Mark keys past ``expiresAt`` as expired and emit ``key.expired`` for each."""
    ctx = context.current()
    async with ctx.sessions() as session:
        await expire_keys_due(session, utcnow())
        await commit(session)


@periodic(PAYMENTS_EVERY_SECONDS)
@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=60_000)
async def expire_payments() -> None:
    """Expire pending payments whose authorization window closed without settlement."""
    ctx = context.current()
    async with ctx.sessions() as session:
        await expire_payments_due(session, utcnow(), redis=redis_of(ctx),
                                  redis_prefix=ctx.settings.redis_prefix)
        await commit(session)
