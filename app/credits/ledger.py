"""The credit ledger: append-only entries, balance kept in step, never negative."""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.agents.models import Agent
from app.credits.models import LedgerEntry
from app.errors import InsufficientCredits, NotFound, ValidationFailed
from app.ids import new_id

KINDS = frozenset({"grant", "deposit", "charge", "refund", "adjustment", "reversal"})


async def post(
    session: AsyncSession,
    agent_id: str,
    kind: str,
    amount_micros: int,
    *,
    idempotency_key: str | None = None,
    reference: str | None = None,
    reason: str | None = None,
    allow_negative: bool = False,
) -> LedgerEntry:
    """Append one entry and move the balance by ``amount_micros`` atomically.

    The balance update is a single conditional UPDATE, so concurrent charges from many
    processes can never take the balance below zero. With an ``idempotency_key`` a repeated
    call returns the first entry instead of posting twice.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
        raise ValidationFailed("amountMicros must be an integer number of USDC base units.")
    if idempotency_key is not None:
        existing = (
            await session.exec(
                select(LedgerEntry).where(col(LedgerEntry.idempotency_key) == idempotency_key)
            )
        ).first()
        if existing is not None:
            return existing

    stmt = (
        update(Agent)
        .where(col(Agent.id) == agent_id)
        .values(balance_micros=Agent.balance_micros + amount_micros)
        .returning(col(Agent.balance_micros))
    )
    if amount_micros < 0 and not allow_negative:
        stmt = stmt.where(col(Agent.balance_micros) >= -amount_micros)
    if kind in ("charge", "refund"):
        # spent_micros counts charges net of refunds: a refund gives a charge back (the
        # gateway releases the reservation of a call that failed), so it is not spent.
        stmt = stmt.values(
            balance_micros=Agent.balance_micros + amount_micros,
            spent_micros=Agent.spent_micros - amount_micros,
        )
    balance = (await session.execute(stmt)).scalar_one_or_none()
    if balance is None:
        await refuse_charge(session, agent_id, -amount_micros)
    entry = LedgerEntry(
        id=new_id("led"),
        agent_id=agent_id,
        kind=kind,
        amount_micros=amount_micros,
        balance_after_micros=balance,
        idempotency_key=idempotency_key,
        reference=reference,
        reason=reason,
    )
    session.add(entry)
    # A concurrent post with the same idempotency key fails here on the unique index and
    # rolls back the whole transaction, balance update included.
    await session.flush()
    return entry


async def refuse_charge(session: AsyncSession, agent_id: str, required_micros: int) -> NoReturn:
    """Say why a conditional charge matched no row: no such agent, or too little credit."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("Agent not found.")
    raise InsufficientCredits(
        "Credit balance too low.",
        details={"balanceMicros": agent.balance_micros, "requiredMicros": required_micros},
    )
