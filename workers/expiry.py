"""Scheduled expiry: time-limited keys, payments that can no longer settle, and the results
kept for replays once their window has closed.

Each row is expired in a transaction of its own (``workers.attention.each``): one that cannot be
is parked for an operator instead of failing every run. Both jobs are idempotent (conditional
updates) and safe to run twice or concurrently.
"""

from __future__ import annotations

import functools
import logging

import dramatiq

from app.db.models.attention import KEY_EXPIRY, PAYMENT_EXPIRY
from app.db.types import utcnow
from app.keys import service as keys
from app.payments import service as payments
from workers import actor_context
from workers.attention import each
from workers.notify import redis_of
from workers.periodic import periodic

log = logging.getLogger("passgate.expiry")

QUEUE = "maintenance"
KEYS_EVERY_SECONDS = 15.0
PAYMENTS_EVERY_SECONDS = 30.0
# Kept results dropped per transaction, and at most per run (the next run goes on).
FORGET_BATCH = 500
FORGET_BATCHES = 20


@periodic(KEYS_EVERY_SECONDS)
@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=60_000)
async def expire_keys() -> None:
    """Mark keys past ``expiresAt`` as expired and emit ``key.expired`` for each."""
    ctx = actor_context.current()
    now = utcnow()
    async with ctx.sessions() as session:
        due = await keys.due_to_expire(session, now)
    await each(KEY_EXPIRY, due, lambda session, key_id: keys.expire(session, key_id, now),
               "expire_keys")


@periodic(PAYMENTS_EVERY_SECONDS)
@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=60_000)
async def expire_payments() -> None:
    """Expire pending payments whose authorization window closed without settlement, then drop
    the sealed results (a pass's key, a gateway answer) whose replay window has closed."""
    ctx = actor_context.current()
    async with ctx.sessions() as session:
        due = await payments.due_to_expire(session, utcnow())
    expire = functools.partial(payments.expire, redis=redis_of(ctx),
                               redis_prefix=ctx.settings.redis_prefix)
    await each(PAYMENT_EXPIRY, due, expire, "expire_payments")
    forgotten = 0
    for _ in range(FORGET_BATCHES):
        async with ctx.sessions() as session:
            dropped = await payments.forget_kept_results(session, utcnow(), FORGET_BATCH)
            await session.commit()
        forgotten += dropped
        if dropped < FORGET_BATCH:
            break
    if forgotten:
        log.info("dropped %d kept results past their replay window", forgotten)
