"""SQL of credits beyond the ledger's own posting (``app.credits.ledger``): balances, history."""

from __future__ import annotations

from sqlmodel import col, select

from app.db.models.agents import Agent
from app.db.models.credits import LedgerEntry
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.uow import UnitOfWork


async def holder(session: UnitOfWork, agent_id: str) -> Agent:
    """The agent whose balance is asked for (its row carries the balance and what it spent)."""
    return await get_or_404(session, Agent, agent_id, "Agent")


async def history(
    session: UnitOfWork, params: PageParams, agent_id: str | None
) -> tuple[list[LedgerEntry], str | None]:
    # An empty filter is no filter, as an absent one.
    stmt = where_equal(select(LedgerEntry), (col(LedgerEntry.agent_id), agent_id or None))
    return await page(session, stmt, col(LedgerEntry.id), params)
