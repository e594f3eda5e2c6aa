"""SQL of pass purchases: claiming a settled payment's fulfilment, and the buyer it creates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col

from app.db.models.agents import Agent
from app.db.models.payments import Payment
from app.db.models.wallets import Wallet
from app.db.uow import UnitOfWork
from app.ids import new_id


async def start_fulfilment(session: UnitOfWork, payment_id: str, now: datetime) -> bool:
    """Mark a settled payment as being fulfilled; True only for the one call that did (the
    conditional UPDATE is what makes a pass issue exactly once)."""
    claimed = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.status) == "settled",
               col(Payment.fulfilled_at).is_(None))
        .values(fulfilled_at=now, updated_at=now)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def add_agent(session: UnitOfWork, name: str) -> Agent:
    agent = Agent(id=new_id("agt"), name=name)
    session.add(agent)
    await session.flush()
    return agent


async def add_wallet(session: UnitOfWork, agent_id: str, address: str) -> None:
    session.add(Wallet(id=new_id("wal"), agent_id=agent_id, address=address.lower()))
    await session.flush()
