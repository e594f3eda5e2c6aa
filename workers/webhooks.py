"""Webhook actors: fan out events, deliver messages, sweep what the broker lost.

All three take ids (or nothing) and are idempotent; the database decides what is left to do.
Each runs one of the flows of :mod:`app.webhooks.flows` with this event loop's
:class:`~app.webhooks.flows.DeliveryFlows`. Retries of a failing *receiver* follow the webhook
schedule (a delayed ``deliver`` job plus ``next_attempt_at`` in the row); Dramatiq's own retries
only cover infrastructure errors (database or broker down) while running the actor.
"""

from __future__ import annotations

import dramatiq

from app.db.models.attention import WEBHOOK_EVENT, WEBHOOK_MESSAGE
from app.webhooks.flows import DeliveryFlows
from app.webhooks.options import WebhookOptions
from app.webhooks.tasks import DELIVER, FAN_OUT, QUEUE, SWEEP, SWEEP_QUEUE
from workers import actor_context
from workers.attention import parks
from workers.periodic import periodic

SWEEP_EVERY_SECONDS = 10.0


def _flows(ctx: actor_context.WorkerContext) -> DeliveryFlows:
    """One per worker event loop (its HTTP client and send slots belong to that loop)."""
    return ctx.resource(
        "webhook_flows",
        lambda: DeliveryFlows(WebhookOptions.from_settings(ctx.settings), ctx.sessions,
                              ctx.outbox.jobs, failure_limit=ctx.settings.job_max_failures),
        lambda flows: flows.aclose(),
    )


@dramatiq.actor(actor_name=FAN_OUT, queue_name=QUEUE, max_retries=10, time_limit=300_000)
@parks(WEBHOOK_EVENT)
async def fan_out(event_id: str) -> None:
    """Turn outbox events into one message per matching endpoint and make the first attempt
    at each right away; failures are retried by ``deliver`` on the schedule.

    Takes ``event_id`` and whatever else is waiting, in batches; sends some of the new
    messages itself and leaves the others to deliver jobs other workers can take.
    """
    await _flows(actor_context.current()).fan_out(event_id)


@dramatiq.actor(actor_name=DELIVER, queue_name=QUEUE, max_retries=5, time_limit=300_000)
@parks(WEBHOOK_MESSAGE)
async def deliver(message_id: str) -> None:
    """One attempt at a message, if it is due and nobody else holds it.

    Claim (short transaction) -> HTTP POST (no transaction open) -> record the attempt and
    schedule the next one (short transaction). A delivered or failed message is a no-op.
    """
    await _flows(actor_context.current()).deliver(message_id)


@periodic(SWEEP_EVERY_SECONDS)
@dramatiq.actor(actor_name=SWEEP, queue_name=SWEEP_QUEUE, max_retries=0, time_limit=120_000)
async def sweep() -> None:
    """Re-drive from the database: undispatched events and overdue, unleased messages.

    This is what makes a Redis flush or a killed worker lose nothing: every piece of work is a
    row, and rows the broker forgot are found here.
    """
    await _flows(actor_context.current()).sweep()
