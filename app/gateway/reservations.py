"""Reserving a gateway call's price from credits, before the call is forwarded.

The reservation *is* a ledger ``charge``, posted in a short transaction that commits before
the upstream is called:

1. the usage row is written ``pending`` (on SQLite this write also takes the write lock
   first, so nothing below runs on a stale snapshot);
2. the charge is one conditional UPDATE of the balance (``ledger.post``), which can never take
   it below zero -> INSUFFICIENT_CREDITS;
3. today's spend counters of the agent and of its platform (fleet) are bumped in one upsert
   and checked against the daily limits -> SPENDING_LIMIT_EXCEEDED.

On PostgreSQL the three are one statement (``reserve_pg``). On the request path
(:func:`reserve_fast`) it runs on its own, committing itself in its one round trip: an ORM
session, or just BEGIN and COMMIT, around it cost more than the statement. Any failure rolls
all three back. The row locks on the agent and the counters are held only for this
transaction, never during the upstream call, and every gateway transaction takes them in the
same order (agent, then counters), so concurrent calls in many processes queue rather than
deadlock; a call that cannot pay stops at the balance without queueing on the counters.

What happens to the reservation once the upstream answered is :mod:`app.gateway.outcomes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.credits import ledger
from app.db.models.gateway import AGENT, PLATFORM, OpenCall
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import NotFound, SpendingLimitExceeded
from app.events.service import emit
from app.gateway import repository, reserve_pg
from app.ids import new_id
from webhooks.events import CreditsLow


@dataclass(frozen=True, slots=True)
class Reservation:
    """A call's price, taken from the agent's credits until the outcome is known."""

    usage_id: str
    price_micros: int
    # The balance right after the charge; None for a free call (nothing was charged).
    balance_after_micros: int | None


def spend_day(moment: datetime) -> str:
    """Daily limits run on UTC days."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _next_midnight(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


async def open_call(session: UnitOfWork, usage: OpenCall) -> None:
    """Record a call as ``pending`` before it is forwarded (nothing charged)."""
    await repository.insert_usage(session, usage)


async def reserve_fast(
    engine: AsyncEngine, usage: OpenCall, *, low_threshold_micros: int,
    relax_durability: bool,
) -> Reservation | None:
    """PostgreSQL's request path: the one-statement reservation, committing itself (one round
    trip; see ``reserve_pg.charge_alone``).

    Only the plain outcome is handled here: charged within the limits, committed. When nothing
    could be charged, or the charge passed a daily limit (an error with details to give) or
    took the balance under the low-credit threshold (an event to emit with it), the statement
    undid itself and this returns None: :func:`reserve` on a session then does the call
    properly.
    """
    if usage.agent_id is None or usage.price_micros <= 0:
        return None
    day = spend_day(usage.created_at)
    usage.spend_day = day
    price = usage.price_micros
    async with engine.connect() as conn:
        try:
            charged = await reserve_pg.charge_alone(
                conn,
                usage,
                entry_id=new_id("led"),
                reason=_reason(usage),
                day=day,
                now=usage.created_at,
                low_threshold_micros=low_threshold_micros,
                relax_durability=relax_durability,
            )
        except reserve_pg.Refused:
            return None
    if charged is None:
        return None
    usage.platform_id = charged.platform_id
    return Reservation(
        usage_id=usage.id, price_micros=price, balance_after_micros=charged.balance_after_micros
    )


async def reserve(
    session: UnitOfWork,
    usage: OpenCall,
    *,
    low_threshold_micros: int,
    relax_durability: bool = False,
) -> Reservation:
    """Write the pending usage row and charge its price, within the daily limits.

    ``relax_durability`` (PostgreSQL): commit without waiting for the WAL flush (see the
    ``gateway_async_commit`` setting); atomicity and the row locks are unchanged.
    """
    if usage.agent_id is None:
        raise ValueError("a credit reservation needs an agent")
    agent_id = usage.agent_id
    price = usage.price_micros
    now = usage.created_at
    day = spend_day(now)
    if price > 0:
        usage.spend_day = day
        if session.get_bind().dialect.name == "postgresql":
            return await _reserve_in_one_statement(
                session, usage, day, low_threshold_micros, relax_durability
            )
    await open_call(session, usage)
    if price == 0:
        return Reservation(usage_id=usage.id, price_micros=0, balance_after_micros=None)

    limits = await repository.spending_limits(session, agent_id)
    if limits is None:
        raise NotFound("Agent not found.")
    if usage.platform_id != limits.platform_id:
        # The fleet is the agent's platform as stored now, not as the cached key remembers
        # it (claimed a moment ago); the release must lower the same counters.
        usage.platform_id = limits.platform_id
        await repository.set_usage_platform(session, usage.id, limits.platform_id)

    # The balance first: a call that cannot pay fails here without queueing on the counters.
    entry = await ledger.post(
        session,
        agent_id,
        "charge",
        -price,
        reference=usage.id,
        reason=f"gateway {usage.provider} {usage.method}",
    )
    owners = repository.spend_owners(agent_id, limits.platform_id)
    totals = await repository.add_spend(session, owners, day, price)
    check_limits(
        ((AGENT, limits.agent_limit, totals.get(AGENT)),
         (PLATFORM, limits.platform_limit, totals.get(PLATFORM))),
        price,
        now,
    )
    return await _reserved(session, usage, entry.balance_after_micros, low_threshold_micros)


async def _reserve_in_one_statement(
    session: UnitOfWork,
    usage: OpenCall,
    day: str,
    low_threshold_micros: int,
    relax_durability: bool,
) -> Reservation:
    """PostgreSQL: the same reservation in one round trip (see ``reserve_pg``)."""
    assert usage.agent_id is not None
    charged = await _charge_in_one_statement(session, usage, day, relax_durability)
    if charged is None:
        # Nothing was written; say why the way the ledger does.
        await ledger.refuse_charge(session, usage.agent_id, usage.price_micros)
    _apply_charge(usage, charged)
    return await _reserved(session, usage, charged.balance_after_micros, low_threshold_micros)


def _reason(usage: OpenCall) -> str:
    return f"gateway {usage.provider} {usage.method}"


async def _charge_in_one_statement(
    session: UnitOfWork, usage: OpenCall, day: str, relax_durability: bool
) -> reserve_pg.Charged | None:
    return await reserve_pg.charge_and_open(
        session,
        usage,
        entry_id=new_id("led"),
        reason=_reason(usage),
        day=day,
        now=usage.created_at,
        relax_durability=relax_durability,
    )


def _apply_charge(usage: OpenCall, charged: reserve_pg.Charged) -> None:
    """The fleet as stored now; raise (rolling the charge back) past a daily limit."""
    usage.platform_id = charged.platform_id
    check_limits(
        ((AGENT, charged.agent_limit, charged.agent_spent),
         (PLATFORM, charged.platform_limit, charged.platform_spent)),
        usage.price_micros,
        usage.created_at,
    )


def crosses_low(balance: int, price: int, low_threshold_micros: int) -> bool:
    """This charge took the balance from at or above the low-credit threshold to below it."""
    return bool(low_threshold_micros) and balance < low_threshold_micros <= balance + price


def check_limits(
    checks: Sequence[tuple[str, int | None, int | None]], price: int, now: datetime
) -> None:
    """Raise when a counter, this call included, passed its daily limit.

    Raising rolls back the charge and the counters with it.
    """
    for scope, limit, total in checks:
        if limit is not None and total is not None and total > limit:
            raise SpendingLimitExceeded(
                "The agent's daily spending limit is reached."
                if scope == AGENT
                else "The fleet's daily spending limit is reached.",
                details={
                    "scope": scope,
                    "limitMicros": limit,
                    "spentTodayMicros": total - price,
                    "priceMicros": price,
                    "resetsAt": rfc3339(_next_midnight(now)),
                },
            )


async def _reserved(
    session: UnitOfWork, usage: OpenCall, balance: int, low_threshold_micros: int
) -> Reservation:
    assert usage.agent_id is not None
    price = usage.price_micros
    if crosses_low(balance, price, low_threshold_micros):
        await credits_low(session, usage.agent_id, balance, low_threshold_micros,
                           usage.created_at)
    return Reservation(usage_id=usage.id, price_micros=price, balance_after_micros=balance)


async def credits_low(
    session: UnitOfWork, agent_id: str, balance: int, threshold: int, now: datetime
) -> None:
    """``credits.low`` once per dip below the threshold.

    Only a charge that crosses the threshold gets here. Refunds of failed calls can lift the
    balance back over it and the next charge crosses again; that is the same dip, so the event
    is sent again only after credits came in from outside since the last one. The agent row is
    locked by the charge, so two calls cannot both decide to send it.
    """
    last_alert = await repository.last_event_at(session, agent_id, "credits.low")
    if last_alert is not None:
        last_top_up = await repository.last_top_up_at(session, agent_id)
        if last_top_up is None or last_top_up <= last_alert:
            return
    await emit(
        session,
        CreditsLow(agent_id=agent_id, balance_micros=balance, threshold_micros=threshold,
                   observed_at=now),
        agent_id=agent_id,
    )
