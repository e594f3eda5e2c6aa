"""Webhook actors: fan out events, deliver messages, sweep what the broker lost.

All three take ids (or nothing) and are idempotent; the database decides what is left to do
(see ``app/webhooks/delivery.py``). Retries of a failing *receiver* follow the webhook schedule
(a delayed ``deliver`` job plus ``next_attempt_at`` in the row); Dramatiq's own retries only
cover infrastructure errors (database or broker down) while running the actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import dramatiq
from ulid import ULID

from app.attention.service import is_transient
from app.db.models.attention import WEBHOOK_EVENT, WEBHOOK_MESSAGE
from app.db.types import utcnow
from app.logs import context as log_context
from app.metrics.instruments import WEBHOOK_DELIVERY_SECONDS, webhook_attempt
from app.webhooks import delivery
from app.webhooks.options import WebhookOptions
from app.webhooks.tasks import (
    DELIVER,
    FAN_OUT,
    FAN_OUT_PENDING,
    QUEUE,
    SWEEP,
    SWEEP_QUEUE,
    fan_out_job,
)
from webhooks.signing import build_headers
from webhooks.transport import DeliveryResult, WebhookSender
from workers import context
from workers.attention import each, parks
from workers.periodic import periodic

log = logging.getLogger("passgate.webhooks")

SWEEP_EVERY_SECONDS = 10.0
# Events one fan-out job may take at once (see ``fan_out``). Under a burst, 50 rather than 20
# cut the worker's CPU per delivery by about 30% and PostgreSQL's by half (fewer transactions
# per delivery; benchmarks/webhook_throughput.py); the price is a longer worst-case lease (see
# ``lease_until``), so a killed worker's batch waits longer for the sweeper.
FAN_OUT_BATCH = 50
# Messages one fan-out job sends itself; more become deliver jobs (spread over workers).
FAN_OUT_LEASES = 64


def _options(ctx: context.WorkerContext) -> WebhookOptions:
    return ctx.resource("webhook_options", lambda: WebhookOptions.from_settings(ctx.settings))


def _sender(ctx: context.WorkerContext, options: WebhookOptions) -> WebhookSender:
    # One pooled, SSRF-guarded client per worker loop.
    return ctx.resource(
        "webhook_sender",
        lambda: WebhookSender(options.policy, options.transport),
        lambda sender: sender.aclose(),
    )


@dataclass
class _Sending:
    """This process's send slots (``webhook_send_concurrency``) and how many leased messages
    are waiting for or holding one: leases are sized to that queue (``lease_until``)."""

    slots: asyncio.Semaphore
    queued: int = 0


def _sending(ctx: context.WorkerContext, options: WebhookOptions) -> _Sending:
    return ctx.resource(
        "webhook_sending", lambda: _Sending(asyncio.Semaphore(options.send_concurrency))
    )


async def _send(
    ctx: context.WorkerContext, options: WebhookOptions, claimed: delivery.Claimed
) -> tuple[delivery.Claimed, DeliveryResult]:
    sending = _sending(ctx, options)
    # Each send is a task of its own (gather), so these ids stay with this attempt's lines.
    log_context.bind(message_id=claimed.message_id, endpoint_id=claimed.endpoint_id)
    try:
        async with sending.slots:
            # Signed when sent, so webhook-timestamp is the attempt's own time.
            headers = build_headers(claimed.message_id, claimed.body, claimed.secrets)
            result = await _sender(ctx, options).send(claimed.url, claimed.body, headers)
    finally:
        sending.queued -= 1
    _measure(claimed.message_id, result)
    return claimed, result


def _measure(message_id: str, result: DeliveryResult) -> None:
    outcome = "success" if result.success else result.error_kind or "http"
    webhook_attempt(outcome, result.latency_ms)
    if not result.success:
        log.info("attempt failed (%s, %s ms): %s", outcome, result.latency_ms, result.error)
    else:
        log.debug("delivered (%s, %s ms)", result.status_code, result.latency_ms)
        # Message ids are ULIDs: their first part is the message's creation time.
        created = ULID.from_str(message_id.partition("_")[2]).timestamp
        WEBHOOK_DELIVERY_SECONDS.observe(max(time.time() - created, 0.0))


async def _send_and_record(
    ctx: context.WorkerContext, options: WebhookOptions, claims: list[delivery.Claimed]
) -> None:
    """Send leased messages (as slots free up), then record every outcome in one
    transaction."""
    if not claims:
        return
    results = await asyncio.gather(*(_send(ctx, options, claimed) for claimed in claims))
    async with ctx.sessions() as session:
        await delivery.record_many(session, results, utcnow(), options)
        await session.commit()


@dramatiq.actor(actor_name=FAN_OUT, queue_name=QUEUE, max_retries=10, time_limit=300_000)
@parks(WEBHOOK_EVENT)
async def fan_out(event_id: str) -> None:
    """Turn outbox events into one message per matching endpoint and make the first attempt
    at each right away; failures are retried by ``deliver`` on the schedule.

    Takes ``event_id`` and whatever else is waiting, ``FAN_OUT_BATCH`` events at a time: the
    API sends no further job while one is queued (see ``WebhookOutbox.dispatch_events``), so
    a full batch hands the rest to a follow-up job. It sends up to ``FAN_OUT_LEASES`` of the
    new messages itself; any beyond become deliver jobs that other workers can take.
    """
    ctx = context.current()
    options = _options(ctx)
    sending = _sending(ctx, options)
    # Before looking for work: events committed from now on send a job of their own.
    await ctx.outbox.jobs.clear_pending(FAN_OUT_PENDING)
    try:
        claims, taken = await _fan_out_batch(ctx, options, event_id, FAN_OUT_BATCH)
    except Exception as exc:
        if is_transient(exc):
            raise
        # An event of the batch broke it: take the batch's events one at a time, so the bad
        # one is counted (and in the end parked) on its own and never holds up the others.
        async with ctx.sessions() as session:
            waiting = await delivery.waiting_events(session, event_id, FAN_OUT_BATCH)
        now = utcnow()
        await each(WEBHOOK_EVENT, waiting,
                   lambda session, one: delivery.fan_out_event(session, one, now), FAN_OUT)
        claims, taken = [], len(waiting)
    sending.queued += len(claims)
    if taken >= FAN_OUT_BATCH:
        await ctx.outbox.jobs.send([fan_out_job(event_id)])
    await _send_and_record(ctx, options, claims)


async def _fan_out_batch(
    ctx: context.WorkerContext, options: WebhookOptions, event_id: str, batch: int
) -> tuple[list[delivery.Claimed], int]:
    sending = _sending(ctx, options)
    async with ctx.sessions() as session:
        claims, taken = await delivery.fan_out_and_claim(
            session, event_id, utcnow(), options, batch=batch,
            lease_limit=FAN_OUT_LEASES, queued_ahead=sending.queued,
        )
        await session.commit()
    return claims, taken


@dramatiq.actor(actor_name=DELIVER, queue_name=QUEUE, max_retries=5, time_limit=300_000)
@parks(WEBHOOK_MESSAGE)
async def deliver(message_id: str) -> None:
    """One attempt at a message, if it is due and nobody else holds it.

    Claim (short transaction) -> HTTP POST (no transaction open) -> record the attempt and
    schedule the next one (short transaction). A delivered or failed message is a no-op.
    """
    log_context.bind(message_id=message_id)
    ctx = context.current()
    options = _options(ctx)
    sending = _sending(ctx, options)
    async with ctx.sessions() as session:
        claimed = await delivery.claim(session, message_id, utcnow(), options,
                                       queued_ahead=sending.queued)
        if isinstance(claimed, delivery.NotDue):
            delivery.schedule_deliveries(session, [(message_id, claimed.seconds)])
        await session.commit()
    if isinstance(claimed, delivery.Claimed):
        sending.queued += 1
        await _send_and_record(ctx, options, [claimed])


@periodic(SWEEP_EVERY_SECONDS)
@dramatiq.actor(actor_name=SWEEP, queue_name=SWEEP_QUEUE, max_retries=0, time_limit=120_000)
async def sweep() -> None:
    """Re-drive from the database: undispatched events and overdue, unleased messages.

    This is what makes a Redis flush or a killed worker lose nothing: every piece of work is a
    row, and rows the broker forgot are found here.
    """
    ctx = context.current()
    options = _options(ctx)
    now = utcnow()
    async with ctx.sessions() as session:
        stale = await delivery.stale_events(session, now, options)
    await each(WEBHOOK_EVENT, stale,
               lambda session, event_id: delivery.fan_out_event(session, event_id, now), SWEEP)
    async with ctx.sessions() as session:
        await delivery.redrive_due(session, now, options)
        await session.commit()
