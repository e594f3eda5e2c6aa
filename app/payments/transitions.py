"""A payment's status changes, each made exactly once, shared by the API and the workers.

``pending/submitted -> settled`` (:func:`mark_settled`), ``-> failed|expired``
(:func:`mark_failed`, :func:`expire`). Each is one conditional UPDATE that emits its
``payment.*`` event only when it made the change, and wakes the requests waiting on the payment
once the transaction commits (``app.payments.waiter``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.events.service import emit
from app.metrics.instruments import SETTLEMENT_SECONDS
from app.payments import repository
from app.payments.waiter import announce_settled
from webhooks.events import (
    EventData,
    PaymentExpired,
    PaymentFailed,
    PaymentPending,
    PaymentSettled,
)


def event_data(payment: Payment, event: str, asset: str | None = None) -> EventData:
    """The ``data`` of a ``payment.*`` event."""
    now = utcnow()
    if event == "payment.pending":
        return PaymentPending(payment_id=payment.id, agent_id=payment.agent_id,
                              amount_micros=payment.amount_micros, network=payment.network,
                              asset=asset or "", pay_to=payment.pay_to, payer=payment.payer,
                              resource=payment.resource, created_at=payment.created_at)
    if event == "payment.settled":
        return PaymentSettled(payment_id=payment.id, agent_id=payment.agent_id,
                              amount_micros=payment.amount_micros, network=payment.network,
                              asset=asset or "", pay_to=payment.pay_to, payer=payment.payer,
                              transaction=payment.tx_hash or "",
                              settled_at=payment.settled_at or now)
    if event == "payment.failed":
        return PaymentFailed(payment_id=payment.id, agent_id=payment.agent_id,
                             amount_micros=payment.amount_micros, network=payment.network,
                             payer=payment.payer, reason=payment.failure_reason or "unknown",
                             failed_at=now)
    return PaymentExpired(payment_id=payment.id, agent_id=payment.agent_id,
                          amount_micros=payment.amount_micros, network=payment.network,
                          expired_at=now)


async def mark_settled(
    session: UnitOfWork, payment_id: str, tx_hash: str, *, asset: str = "",
    payer: str | None = None, redis: Any = None, redis_prefix: str = "passgate",
) -> bool:
    """``pending/submitted -> settled`` exactly once; True when this call made the change.
    ``payer`` fills in who paid when it was not known at record time (a pending push)."""
    now = utcnow()
    values: dict[str, Any] = {"status": "settled", "tx_hash": tx_hash, "settled_at": now,
                              "updated_at": now}
    if payer is not None:
        values["payer"] = payer
    # From any unsettled state: money that moved on chain is honoured even when it arrives
    # after the payment was given up as expired or failed (a late payment is never dropped).
    if not await repository.transition(session, payment_id, None, values):
        return False
    payment = await repository.reload(session, payment_id)
    await emit(session, event_data(payment, "payment.settled", asset), agent_id=payment.agent_id)
    session.after_commit(lambda: announce_settled(redis, redis_prefix, payment_id))
    # Counted once committed: a transition rolled back never happened.
    waited = SETTLEMENT_SECONDS.labels(payment.scheme, payment.network)
    seconds = max((now - payment.created_at).total_seconds(), 0.0)
    session.after_commit(lambda: waited.observe(seconds))
    return True


async def mark_failed(
    session: UnitOfWork, payment_id: str, reason: str, *, status: str = "failed",
    payer: str | None = None, redis: Any = None, redis_prefix: str = "passgate",
) -> bool:
    """``pending/submitted -> failed|expired`` exactly once (``payer`` as in mark_settled)."""
    values: dict[str, Any] = {"status": status, "failure_reason": reason[:500],
                              "updated_at": utcnow()}
    if payer is not None:
        values["payer"] = payer
    if not await repository.transition(session, payment_id, ("pending", "submitted"), values):
        return False
    payment = await repository.reload(session, payment_id)
    event = f"payment.{status}"
    await emit(session, event_data(payment, event), agent_id=payment.agent_id)
    session.after_commit(lambda: announce_settled(redis, redis_prefix, payment_id))
    return True


async def due_to_expire(
    session: UnitOfWork, now: datetime, *, exact_grace_seconds: int = 600,
    push_after_seconds: int = 3600, limit: int = 200,
) -> list[str]:
    """Payments that can no longer settle: an EIP-3009 authorization past its ``validBefore``
    (plus a grace for a transaction already in flight), or a pushed transfer still unconfirmed
    after ``push_after_seconds`` (except those parked for an operator)."""
    return await repository.due_to_expire(
        session, now - timedelta(seconds=exact_grace_seconds),
        now - timedelta(seconds=push_after_seconds), limit,
    )


async def expire(session: UnitOfWork, payment_id: str, *, redis: Any = None,
                 redis_prefix: str = "passgate") -> bool:
    """Give up on one payment that can no longer settle; emits ``payment.expired`` once."""
    return await mark_failed(session, payment_id, "not settled within its validity window",
                             status="expired", redis=redis, redis_prefix=redis_prefix)


async def expire_due(
    session: UnitOfWork, now: datetime, *, redis: Any = None, redis_prefix: str = "passgate",
) -> list[str]:
    """Expire every due payment in the caller's transaction (tools and tests; the scheduled
    job expires each in a transaction of its own)."""
    return [payment_id for payment_id in await due_to_expire(session, now)
            if await expire(session, payment_id, redis=redis, redis_prefix=redis_prefix)]
