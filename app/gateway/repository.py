"""SQL of the gateway: providers, usage rows, spend counters, per-call payments. Never commits.

The credit reservation on PostgreSQL is one statement of its own: :mod:`app.gateway.reserve_pg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.agents import Agent
from app.db.models.attention import GATEWAY_RESERVATION
from app.db.models.credits import LedgerEntry
from app.db.models.events import Event
from app.db.models.gateway import (
    AGENT,
    PENDING,
    PLATFORM,
    SUCCEEDED,
    GatewayProvider,
    GatewayUsage,
    OpenCall,
    SpendCounter,
)
from app.db.models.payments import Payment
from app.db.models.platforms import Platform
from app.db.paging import PageParams
from app.db.queries import page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork

# -- providers ---------------------------------------------------------------------------


async def enabled_providers(session: UnitOfWork) -> list[GatewayProvider]:
    stmt = select(GatewayProvider).where(col(GatewayProvider.enabled).is_(True))
    return list((await session.exec(stmt)).all())


async def all_providers(session: UnitOfWork) -> list[GatewayProvider]:
    stmt = select(GatewayProvider).order_by(col(GatewayProvider.name))
    return list((await session.exec(stmt)).all())


async def provider_by_name(session: UnitOfWork, name: str) -> GatewayProvider | None:
    stmt = select(GatewayProvider).where(col(GatewayProvider.name) == name)
    return (await session.exec(stmt)).first()


# -- spending limits -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    platform_id: str | None
    agent_limit: int | None
    platform_limit: int | None


async def spending_limits(session: UnitOfWork, agent_id: str) -> Limits | None:
    """The agent's platform and both daily limits, read as of now (one round trip)."""
    columns: list[Any] = [
        col(Agent.platform_id),
        col(Agent.daily_spending_limit_micros),
        col(Platform.daily_spending_limit_micros),
    ]
    stmt = (
        select(*columns)
        .select_from(Agent)
        .outerjoin(Platform, col(Platform.id) == col(Agent.platform_id))
        .where(col(Agent.id) == agent_id)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return Limits(platform_id=row[0], agent_limit=row[1], platform_limit=row[2])


def spend_owners(agent_id: str, platform_id: str | None) -> list[tuple[str, str]]:
    """The spend counters a call of ``agent_id`` counts on: the agent's, and its fleet's."""
    owners = [(AGENT, agent_id)]
    if platform_id is not None:
        owners.append((PLATFORM, platform_id))
    return owners


def _upsert(session: UnitOfWork) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def add_spend(
    session: UnitOfWork, owners: Sequence[tuple[str, str]], day: str, amount: int
) -> dict[str, int]:
    """Add ``amount`` to each (scope, owner) counter of ``day``; the new totals by scope.

    One INSERT ... ON CONFLICT DO UPDATE: it creates the day's row or locks and bumps the
    existing one, and the lock is held until the transaction ends, so a concurrent call in
    another process sees this call's total (or waits for it to roll back).
    """
    insert = _upsert(session)
    stmt = insert(SpendCounter).values(
        [{"scope": s, "owner_id": o, "day": day, "spent_micros": amount} for s, o in owners]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "owner_id", "day"],
        set_={"spent_micros": SpendCounter.spent_micros + stmt.excluded.spent_micros},
    ).returning(col(SpendCounter.scope), col(SpendCounter.spent_micros))
    rows = (await session.execute(stmt)).all()
    return {scope: spent for scope, spent in rows}  # noqa: C416  (Row pairs, typed)


async def remove_spend(
    session: UnitOfWork, owners: Sequence[tuple[str, str]], day: str, amount: int
) -> None:
    for scope, owner in owners:
        await session.execute(
            update(SpendCounter)
            .where(
                col(SpendCounter.scope) == scope,
                col(SpendCounter.owner_id) == owner,
                col(SpendCounter.day) == day,
            )
            # Never below zero, even if a counter was reset by hand meanwhile.
            .values(
                spent_micros=case(
                    (col(SpendCounter.spent_micros) > amount, SpendCounter.spent_micros - amount),
                    else_=0,
                )
            )
        )


# -- usage -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finished:
    """What a release needs to know about the call it just closed."""

    agent_id: str | None
    platform_id: str | None
    price_micros: int
    spend_day: str | None
    payment: str


async def insert_usage(session: UnitOfWork, usage: OpenCall) -> None:
    """One Core INSERT: the row is never read back, so the ORM unit of work is not needed."""
    table = GatewayUsage.__table__  # type: ignore[attr-defined]
    await session.execute(insert(table).values(**usage.row()))


async def set_usage_platform(session: UnitOfWork, usage_id: str, platform_id: str | None) -> None:
    await session.execute(
        update(GatewayUsage).where(col(GatewayUsage.id) == usage_id).values(platform_id=platform_id)
    )


async def keep_usage(session: UnitOfWork, rows: Sequence[dict[str, Any]]) -> None:
    """Mark many pending calls ``succeeded`` in one batched statement (an executemany).

    Each row: ``usage_id``, ``upstream_status``, ``latency_ms``, ``upstream_request_id``,
    ``completed_at``. A row no longer pending (released by the sweeper) is left alone.
    """
    table = GatewayUsage.__table__  # type: ignore[attr-defined]
    stmt = (
        update(table)
        .where(table.c.id == bindparam("usage_id"), table.c.status == PENDING)
        .values(
            status=SUCCEEDED,
            cost_micros=table.c.price_micros,
            upstream_status=bindparam("upstream_status"),
            latency_ms=bindparam("latency_ms"),
            upstream_request_id=bindparam("upstream_request_id"),
            completed_at=bindparam("completed_at"),
        )
    )
    connection = await session.connection()
    await connection.execute(stmt, list(rows))


async def finish_usage(
    session: UnitOfWork, usage_id: str, values: dict[str, Any]
) -> Finished | None:
    """Move a ``pending`` usage row to its final state; None if it was not pending any more.

    The conditional UPDATE is what makes commit and release exactly-once between the request
    that made the call and the sweeper that releases abandoned ones.
    """
    stmt = (
        update(GatewayUsage)
        .where(col(GatewayUsage.id) == usage_id, col(GatewayUsage.status) == PENDING)
        .values(**values)
        .returning(
            col(GatewayUsage.agent_id),
            col(GatewayUsage.platform_id),
            col(GatewayUsage.price_micros),
            col(GatewayUsage.spend_day),
            col(GatewayUsage.payment),
        )
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return Finished(
        agent_id=row[0], platform_id=row[1], price_micros=row[2], spend_day=row[3], payment=row[4]
    )


async def stale_usage_ids(session: UnitOfWork, before: datetime, limit: int) -> list[str]:
    stmt = (
        select(col(GatewayUsage.id))
        .where(col(GatewayUsage.status) == PENDING, col(GatewayUsage.created_at) < before,
               not_parked(GATEWAY_RESERVATION, GatewayUsage.id))
        .order_by(col(GatewayUsage.created_at))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars().all())


async def search_usage(
    session: UnitOfWork,
    params: PageParams,
    *,
    agent_id: str,
    provider: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[GatewayUsage], str | None]:
    stmt = where_equal(
        select(GatewayUsage).where(col(GatewayUsage.agent_id) == agent_id),
        # An empty ``provider`` is no filter, as a left-out one.
        (col(GatewayUsage.provider), provider or None),
    )
    if since is not None:
        stmt = stmt.where(col(GatewayUsage.created_at) >= since)
    if until is not None:
        stmt = stmt.where(col(GatewayUsage.created_at) < until)
    return await page(session, stmt, col(GatewayUsage.id), params)


# -- credits.low -----------------------------------------------------------------------------


async def last_event_at(session: UnitOfWork, agent_id: str, event_type: str) -> datetime | None:
    stmt = select(func.max(col(Event.created_at))).where(
        col(Event.agent_id) == agent_id, col(Event.type) == event_type
    )
    value: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
    return value


async def last_top_up_at(session: UnitOfWork, agent_id: str) -> datetime | None:
    """When credits last came in from outside (a grant, deposit or credit adjustment).

    Refunds and credit-lease releases do not count: a released reservation or the unused part
    of a lease is money coming back, not a top-up.
    """
    stmt = select(func.max(col(LedgerEntry.created_at))).where(
        col(LedgerEntry.agent_id) == agent_id,
        col(LedgerEntry.amount_micros) > 0,
        col(LedgerEntry.kind).not_in(("refund", "release")),
    )
    value: datetime | None = (await session.execute(stmt)).scalar_one_or_none()
    return value


# -- per-call x402 payments --------------------------------------------------------------------


async def reopen_payment(session: UnitOfWork, payment_id: str) -> None:
    """A ``failed`` payment back to ``pending`` (its call failed upstream, the authorization
    was never used)."""
    await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.status) == "failed")
        .values(status="pending", failure_reason=None, fulfilled_at=None, updated_at=utcnow())
    )


async def payment_as_stored(session: UnitOfWork, payment_id: str) -> Payment | None:
    """The payment read again from the database (not the session's copy)."""
    return await session.get(Payment, payment_id, populate_existing=True)


async def keep_answer(session: UnitOfWork, payment_id: str, sealed: str,
                      expires_at: datetime) -> None:
    """Keep a paid call's sealed answer for the retries of its payment identifier."""
    await session.execute(
        update(Payment).where(col(Payment.id) == payment_id)
        .values(result_sealed=sealed, result_expires_at=expires_at, updated_at=utcnow())
    )


async def take_payment_for_call(session: UnitOfWork, payment_id: str) -> bool:
    """Mark a pending payment's call as handed upstream; False if another request did."""
    now = utcnow()
    taken = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.status) == "pending",
               col(Payment.fulfilled_at).is_(None))
        .values(fulfilled_at=now, updated_at=now)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE
