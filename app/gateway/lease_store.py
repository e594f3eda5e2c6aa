"""SQL of credit leases (``app.gateway.leases``): the lease rows and the calls paid from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import col, select

from app.db.models.agents import Agent
from app.db.models.gateway import LEASE_CLOSED, LEASE_OPEN, CreditLease, GatewayUsage
from app.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Closed:
    agent_id: str
    platform_id: str | None
    day: str
    amount_micros: int
    used_micros: int


async def lock_balance(session: UnitOfWork, agent_id: str) -> int | None:
    """The agent's balance, its row locked until the transaction ends (a no-op UPDATE: on
    SQLite it also takes the write lock). None: no such agent."""
    stmt = (
        update(Agent)
        .where(col(Agent.id) == agent_id)
        .values(balance_micros=Agent.balance_micros)
        .returning(col(Agent.balance_micros))
    )
    balance: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return balance


async def hold(session: UnitOfWork, agent_id: str, amount: int) -> None:
    """A lease took ``amount`` out of the balance (moved by the ledger's ``hold`` entry)."""
    await session.execute(
        update(Agent).where(col(Agent.id) == agent_id)
        .values(held_micros=Agent.held_micros + amount)
    )


async def unhold(session: UnitOfWork, agent_id: str, amount: int, used: int) -> None:
    """A lease of ``amount`` closed: ``used`` of it is spent (the rest went back by the
    ledger's ``release`` entry)."""
    await session.execute(
        update(Agent).where(col(Agent.id) == agent_id)
        .values(held_micros=Agent.held_micros - amount, spent_micros=Agent.spent_micros + used)
    )


async def insert_lease(session: UnitOfWork, lease: CreditLease) -> None:
    table = CreditLease.__table__  # type: ignore[attr-defined]
    await session.execute(insert(table).values(**lease.model_dump()))


async def add_used(session: UnitOfWork, used: Mapping[str, int]) -> set[str]:
    """Add each lease's newly recorded use; the ids of the leases that were still open."""
    still_open: set[str] = set()
    for lease_id, amount in used.items():
        stmt = (
            update(CreditLease)
            .where(col(CreditLease.id) == lease_id, col(CreditLease.state) == LEASE_OPEN)
            .values(used_micros=CreditLease.used_micros + amount)
            .returning(col(CreditLease.id))
        )
        if (await session.execute(stmt)).first() is not None:
            still_open.add(lease_id)
    return still_open


async def insert_calls(session: UnitOfWork, rows: Sequence[dict[str, Any]]) -> None:
    """The finished calls' usage rows, in one executemany."""
    if rows:
        table = GatewayUsage.__table__  # type: ignore[attr-defined]
        connection = await session.connection()
        await connection.execute(insert(table), list(rows))


async def close(session: UnitOfWork, lease_id: str, by: str, now: datetime) -> Closed | None:
    """Mark an open lease closed; what it held and used (None: it was closed already)."""
    stmt = (
        update(CreditLease)
        .where(col(CreditLease.id) == lease_id, col(CreditLease.state) == LEASE_OPEN)
        .values(state=LEASE_CLOSED, closed_at=now, closed_by=by)
        .returning(
            col(CreditLease.agent_id),
            col(CreditLease.platform_id),
            col(CreditLease.day),
            col(CreditLease.amount_micros),
            col(CreditLease.used_micros),
        )
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return Closed(agent_id=row[0], platform_id=row[1], day=row[2], amount_micros=row[3],
                  used_micros=row[4])


async def expired_ids(session: UnitOfWork, before: datetime, limit: int) -> list[str]:
    stmt = (
        select(col(CreditLease.id))
        .where(col(CreditLease.state) == LEASE_OPEN, col(CreditLease.expires_at) < before)
        .order_by(col(CreditLease.expires_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
