"""Credit operations beyond the raw ledger: operator adjustments and history."""

from __future__ import annotations

from sqlmodel import col, select

from app.credits import ledger
from app.db.models.credits import LedgerEntry
from app.db.paging import PageParams, apply, split
from app.db.uow import UnitOfWork
from app.errors import ValidationFailed
from app.events.service import emit
from webhooks.events import CreditsDeposited


async def adjust(
    session: UnitOfWork,
    agent_id: str,
    amount_micros: int,
    reason: str,
    idempotency_key: str | None,
) -> ledger.Posted:
    """An operator correction; a debit may not take the balance below zero. A retry with the
    same idempotency key is the first entry again, replayed, and emits nothing."""
    if amount_micros == 0:
        raise ValidationFailed("amountMicros must not be zero.")
    posted = await ledger.post_result(
        session, agent_id, "adjustment", amount_micros,
        idempotency_key=f"adjust:{idempotency_key}" if idempotency_key else None,
        reason=reason,
    )
    entry = posted.entry
    if amount_micros > 0 and not posted.replayed:
        await emit(
            session,
            CreditsDeposited(agent_id=agent_id, amount_micros=amount_micros,
                             balance_micros=entry.balance_after_micros, source="adjustment",
                             ledger_entry_id=entry.id, deposited_at=entry.created_at),
            agent_id=agent_id,
        )
    return posted


async def history(
    session: UnitOfWork, params: PageParams, agent_id: str | None
) -> tuple[list[LedgerEntry], str | None]:
    stmt = select(LedgerEntry)
    if agent_id:
        stmt = stmt.where(col(LedgerEntry.agent_id) == agent_id)
    rows = (await session.exec(apply(stmt, col(LedgerEntry.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda e: e.id)
