"""SQL of credit leases (``app.gateway.leases``): the lease rows and the calls paid from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, text, update
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db import locks
from app.db.models.agents import Agent
from app.db.models.attention import GATEWAY_LEASE
from app.db.models.gateway import (
    LEASE_CLOSED,
    LEASE_OPEN,
    CreditLease,
    GatewayUsage,
    SpendCounter,
)
from app.db.models.platforms import Platform
from app.db.paging import PageParams
from app.db.queries import page, where_equal
from app.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Closed:
    agent_id: str
    platform_id: str | None
    day: str
    amount_micros: int
    used_micros: int


@dataclass(frozen=True, slots=True)
class Holder:
    balance_micros: int
    platform_id: str | None
    agent_limit: int | None
    platform_limit: int | None


async def lock_holder(session: UnitOfWork, agent_id: str) -> Holder | None:
    """The agent's balance, fleet and daily limits, its row locked until the transaction ends
    (a no-op UPDATE: on SQLite it also takes the write lock). None: no such agent."""
    fleet_limit = (
        select(col(Platform.daily_spending_limit_micros))
        .where(col(Platform.id) == col(Agent.platform_id))
        .scalar_subquery()
    )
    stmt = (
        update(Agent)
        .where(col(Agent.id) == agent_id)
        .values(balance_micros=Agent.balance_micros)
        .returning(col(Agent.balance_micros), col(Agent.platform_id),
                   col(Agent.daily_spending_limit_micros), fleet_limit)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return Holder(balance_micros=row[0], platform_id=row[1], agent_limit=row[2],
                  platform_limit=row[3])


async def relax_durability(session: UnitOfWork) -> None:
    """PostgreSQL: this transaction commits without waiting for its WAL flush."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL synchronous_commit = off"))


async def spent_today(
    session: UnitOfWork, owners: Sequence[tuple[str, str]], day: str
) -> dict[str, int]:
    """Today's counters by scope, read without a lock (a lease is sized on them; the locked
    totals after its charge decide)."""
    found: dict[str, int] = {}
    for scope, owner in owners:
        spent = (await session.execute(
            select(col(SpendCounter.spent_micros)).where(
                col(SpendCounter.scope) == scope, col(SpendCounter.owner_id) == owner,
                col(SpendCounter.day) == day)
        )).scalar_one_or_none()
        found[scope] = spent or 0
    return found


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


# The writer's statements, built once: it runs every few tens of milliseconds, and building
# SQLAlchemy expressions cost more CPU than executing them.
_LEASES = CreditLease.__table__  # type: ignore[attr-defined]
_LOCK_OPEN = (
    select(_LEASES.c.id)
    .where(_LEASES.c.id.in_(bindparam("ids", expanding=True)), _LEASES.c.state == LEASE_OPEN)
    .order_by(_LEASES.c.id)
    .with_for_update()
)
_ADD_USED = (
    update(_LEASES)
    .where(_LEASES.c.id == bindparam("lease_id"))
    .values(used_micros=_LEASES.c.used_micros + bindparam("amount"))
)
_CALLS = GatewayUsage.__table__  # type: ignore[attr-defined]
_INSERT_CALLS = insert(_CALLS)
_WRITTEN = select(_CALLS.c.id).where(_CALLS.c.id.in_(bindparam("ids", expanding=True)))


async def add_used(session: UnitOfWork, used: Mapping[str, int]) -> set[str]:
    """Add each lease's newly recorded use; the ids of the leases that were still open.

    Two statements however many leases: the open ones are locked first (a concurrent close
    waits, or has already closed them and they are left out), then updated in one executemany.
    """
    if not used:
        return set()
    # SQLite: the sweeper closing one of these leases either committed already or waits.
    await locks.sqlite_writer(session)
    connection = await session.connection()
    locked = await connection.execute(_LOCK_OPEN, {"ids": list(used)})
    still_open = set(locked.scalars().all())
    if still_open:
        await connection.execute(_ADD_USED, [{"lease_id": lease_id, "amount": used[lease_id]}
                                             for lease_id in sorted(still_open)])
    return still_open


async def written_calls(session: UnitOfWork, ids: Sequence[str]) -> set[str]:
    """Which of these usage rows exist already."""
    connection = await session.connection()
    return set((await connection.execute(_WRITTEN, {"ids": list(ids)})).scalars().all())


async def insert_calls(session: UnitOfWork, rows: Sequence[dict[str, Any]]) -> None:
    """The finished calls' usage rows, in one executemany."""
    if rows:
        connection = await session.connection()
        await connection.execute(_INSERT_CALLS, list(rows))


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


async def extend(session: UnitOfWork, lease_ids: Sequence[str], until: datetime) -> None:
    await session.execute(
        update(CreditLease)
        .where(col(CreditLease.id).in_(list(lease_ids)), col(CreditLease.state) == LEASE_OPEN)
        .values(expires_at=until)
    )


async def search(
    session: UnitOfWork, params: PageParams, *, agent_id: str | None, state: str | None
) -> tuple[list[CreditLease], str | None]:
    stmt = where_equal(select(CreditLease), (col(CreditLease.agent_id), agent_id or None),
                       (col(CreditLease.state), state or None))
    return await page(session, stmt, col(CreditLease.id), params)


async def expired_ids(session: UnitOfWork, before: datetime, limit: int) -> list[str]:
    stmt = (
        select(col(CreditLease.id))
        .where(col(CreditLease.state) == LEASE_OPEN, col(CreditLease.expires_at) < before,
               not_parked(GATEWAY_LEASE, CreditLease.id))
        .order_by(col(CreditLease.expires_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())
