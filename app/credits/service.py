"""Credit operations beyond the raw ledger: balances, operator adjustments and history.

Deposits (USDC from a linked wallet becomes credits) are ``app.credits.deposits``; every move
of a balance goes through the append-only ledger (``app.credits.ledger``). Nothing here needs
more than the caller's one transaction.
"""

from __future__ import annotations

from app.audit.service import Actor, record
from app.credits import ledger, repository
from app.credits.schemas import Balance
from app.db.models.credits import LedgerEntry
from app.db.paging import PageParams
from app.db.uow import UnitOfWork
from app.errors import ValidationFailed
from app.events.service import emit
from webhooks.events import CreditsDeposited


async def balance(session: UnitOfWork, agent_id: str) -> Balance:
    """An agent's credits and total spent, in micros (and USD for display)."""
    agent = await repository.holder(session, agent_id)
    return Balance(
        credits_usd=agent.balance_micros / 1_000_000,
        total_spent=agent.spent_micros / 1_000_000,
        creditsMicros=agent.balance_micros,
        spentMicros=agent.spent_micros,
        heldMicros=agent.held_micros,
    )


async def adjust(
    session: UnitOfWork,
    actor: Actor,
    agent_id: str,
    amount_micros: int,
    reason: str,
    idempotency_key: str | None,
) -> LedgerEntry:
    """An operator correction, audited; a debit may not take the balance below zero. A retry
    with the same idempotency key is the first entry again, replayed: it emits nothing and
    writes no second audit row (the first request's covers it)."""
    # The credits area sits below agents: it checks the agent exists through the table.
    await repository.holder(session, agent_id)
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
    if not posted.replayed:
        await record(session, actor, "credits.adjust", "agent", agent_id,
                     after={"amountMicros": amount_micros, "reason": reason,
                            "balanceAfterMicros": entry.balance_after_micros})
    return entry


async def history(
    session: UnitOfWork, params: PageParams, agent_id: str | None
) -> tuple[list[LedgerEntry], str | None]:
    """Ledger entries newest first, of one agent or of all."""
    return await repository.history(session, params, agent_id)
