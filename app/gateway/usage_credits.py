"""A usage-priced call paid with credits: reserved at the maximum, charged the usage.

The reservation takes the provider's ``maxMicros`` (within the daily limits, like any call);
the 2xx answer is read whole, its usage priced (``app.gateway.usage_pricing``), and in one
transaction the usage row is kept at that cost while the difference goes back to the agent (a
``refund`` ledger entry, idempotent per call) and out of the day's spend counters. A failed call
is released whole, as any other. The response headers show the cost and the balance after it.
"""

from __future__ import annotations

import anyio
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.config.providers import UsagePricing
from app.credits import ledger
from app.db.models.gateway import SUCCEEDED
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.gateway import repository
from app.gateway.headers import BALANCE, COST
from app.gateway.outcomes import Outcome
from app.gateway.reservations import Reservation
from app.gateway.usage_pricing import charge_for_answer


async def keep_usage_cost(
    session: UnitOfWork, usage_id: str, outcome: Outcome, cost_micros: int
) -> None:
    """Keep a pending call at ``cost_micros`` (at most its reserved price) and give the rest
    back; nothing happens to a call already closed (by the sweeper)."""
    finished = await repository.finish_usage(session, usage_id, {
        "status": SUCCEEDED,
        "cost_micros": cost_micros,
        "upstream_status": outcome.upstream_status,
        "latency_ms": outcome.latency_ms,
        "upstream_request_id": outcome.upstream_request_id,
        "completed_at": utcnow(),
    })
    if finished is None or finished.payment != "credits" or finished.agent_id is None:
        return
    unused = finished.price_micros - cost_micros
    if unused <= 0:
        return
    await ledger.post(
        session, finished.agent_id, "refund", unused,
        idempotency_key=f"gateway-usage:{usage_id}", reference=usage_id,
        reason="gateway call priced by usage: the unused part of its reservation",
    )
    if finished.spend_day is not None:
        await repository.remove_spend(
            session, repository.spend_owners(finished.agent_id, finished.platform_id),
            finished.spend_day, unused,
        )


async def settle_with_credits(
    sessions: async_sessionmaker[UnitOfWork], pricing: UsagePricing, provider: str,
    reservation: Reservation, outcome: Outcome, body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> int:
    """Charge a 2xx answer's usage out of its reservation and set the cost and balance
    headers; returns the cost. Shielded: an interrupted write would leave the whole maximum
    charged until the sweeper (which then gives everything back)."""
    content_type = next((v.decode("latin-1") for n, v in headers if n == b"content-type"), "")
    cost, _units = charge_for_answer(pricing, provider, body, content_type)
    cost = min(cost, reservation.price_micros)
    with anyio.CancelScope(shield=True):
        async with sessions() as session:
            await keep_usage_cost(session, reservation.usage_id, outcome, cost)
            await session.commit()
    headers[:] = [(n, v) for n, v in headers if n not in (COST, BALANCE)]
    headers.append((COST, str(cost).encode()))
    if reservation.balance_after_micros is not None:
        balance = reservation.balance_after_micros + reservation.price_micros - cost
        headers.append((BALANCE, str(balance).encode()))
    return cost
