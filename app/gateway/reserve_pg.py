"""The credit reservation as one PostgreSQL statement (the gateway's hot path).

The repository's PostgreSQL-only part, kept apart from ``repository.py`` for its size.
Data-modifying CTEs do in one round trip what :func:`app.gateway.reservations.reserve` does in
five on other databases: charge the balance (a conditional UPDATE that locks the agent row and
never goes below zero), write the pending usage row and the ``charge`` ledger entry, and bump
today's spend counters of the agent and its fleet (locked by the upsert). Every write hangs off
the charged agent row, so when the balance is too low nothing at all is written. Locks are
taken in the same order as on the portable path (agent, then counters).

Two variants: :func:`charge_and_open` runs in a session's transaction and its caller checks
the returned totals against the daily limits (raising rolls the transaction back);
:func:`charge_alone` (the request path) runs on its own and makes that check itself, undoing
the statement through ``passgate_refuse`` (migration 0008) when the caller must decide.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models.gateway import AGENT, PENDING, PLATFORM, OpenCall
from app.db.uow import UnitOfWork

_CHARGE = """
WITH agent AS (
    UPDATE agents
       SET balance_micros = balance_micros - CAST(:price AS BIGINT),
           spent_micros = spent_micros + CAST(:price AS BIGINT)
     WHERE id = :agent_id AND balance_micros >= CAST(:price AS BIGINT)
 RETURNING balance_micros, platform_id, daily_spending_limit_micros
), usage_row AS (
    INSERT INTO gateway_usage (id, agent_id, key_id, platform_id, provider, method, route,
                               status, price_micros, cost_micros, payment, spend_day,
                               created_at)
    SELECT :usage_id, :agent_id, :key_id, agent.platform_id, :provider, :method, :route,
           'pending', CAST(:price AS BIGINT), 0, 'credits', :day, :now
      FROM agent
), entry AS (
    INSERT INTO ledger_entries (id, agent_id, kind, amount_micros, balance_after_micros,
                                reference, reason, created_at)
    SELECT :entry_id, :agent_id, 'charge', -CAST(:price AS BIGINT), agent.balance_micros,
           :usage_id, :reason, :now
      FROM agent
), spend AS (
    INSERT INTO gateway_spend_counters (scope, owner_id, day, spent_micros)
    SELECT 'agent', :agent_id, :day, CAST(:price AS BIGINT) FROM agent
    UNION ALL
    SELECT 'platform', agent.platform_id, :day, CAST(:price AS BIGINT)
      FROM agent WHERE agent.platform_id IS NOT NULL
        ON CONFLICT (scope, owner_id, day) DO UPDATE
       SET spent_micros = gateway_spend_counters.spent_micros + EXCLUDED.spent_micros
 RETURNING scope, spent_micros
)
{result}
"""

# What the charge left: the balance, the limits, and today's totals (positional for
# charge_and_open, by name for the refusing variant below).
_TOTALS = """
SELECT agent.balance_micros,
       agent.platform_id,
       agent.daily_spending_limit_micros AS agent_limit,
       (SELECT p.daily_spending_limit_micros FROM platforms p WHERE p.id = agent.platform_id)
           AS platform_limit,
       (SELECT s.spent_micros FROM spend s WHERE s.scope = 'agent') AS agent_spent,
       (SELECT s.spent_micros FROM spend s WHERE s.scope = 'platform') AS platform_spent
       {relax}
  FROM agent
"""

# The request path's variant runs on its own, outside any explicit transaction: what the
# portable path would report or emit (a daily limit passed, the low-credit threshold crossed)
# makes it call passgate_refuse (migration 0008), whose error undoes every write above.
_REFUSING_RESULT = """
, charged AS ({select})
SELECT charged.*,
       CASE WHEN (charged.agent_limit IS NOT NULL AND charged.agent_spent > charged.agent_limit)
              OR (charged.platform_limit IS NOT NULL
                  AND charged.platform_spent > charged.platform_limit)
              OR (CAST(:low AS BIGINT) > 0
                  AND charged.balance_micros < CAST(:low AS BIGINT)
                  AND CAST(:low AS BIGINT) <= charged.balance_micros + CAST(:price AS BIGINT))
            THEN passgate_refuse('a limit or the low-credit threshold')
       END
       {relax}
  FROM charged
"""
# What passgate_refuse raises.
REFUSED_SQLSTATE = "PG402"

# The literals above are the models' constants.
assert (PENDING, AGENT, PLATFORM) == ("pending", "agent", "platform")

# ``set_config(..., true)`` is SET LOCAL as an expression: the relaxed variant switches the
# transaction to asynchronous commit in the same round trip. Only constant text is spliced in.
_SYNC_OFF = ", set_config('synchronous_commit', 'off', true)"
_STRICT = text(_CHARGE.format(result=_TOTALS.format(relax="")))
_RELAXED = text(_CHARGE.format(result=_TOTALS.format(relax=_SYNC_OFF)))
_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """The statement with asyncpg's ``$n`` placeholders, and the parameter names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


def _refusing(relax: str) -> tuple[str, tuple[str, ...]]:
    # The CTE list goes on past "agent ... spend": the result becomes one more CTE.
    head = _CHARGE.format(result="").rstrip()
    return _numbered(head + _REFUSING_RESULT.format(select=_TOTALS.format(relax=""), relax=relax))


_REFUSING_STRICT = _refusing("")
_REFUSING_RELAXED = _refusing(_SYNC_OFF)


@dataclass(frozen=True, slots=True)
class Charged:
    balance_after_micros: int
    platform_id: str | None
    agent_limit: int | None
    platform_limit: int | None
    agent_spent: int | None
    platform_spent: int | None


class Refused(Exception):
    """:func:`charge_alone` undid its charge: a daily limit, or the low-credit threshold."""


async def charge_alone(
    connection: AsyncConnection,
    usage: OpenCall,
    *,
    entry_id: str,
    reason: str,
    day: str,
    now: datetime,
    low_threshold_micros: int,
    relax_durability: bool,
) -> Charged | None:
    """The request path: the charge as one self-committing statement, sent straight to
    asyncpg on a pooled connection (no BEGIN/COMMIT round trips, none of SQLAlchemy's
    statement machinery, which cost more than PostgreSQL's work on it).

    Returns what it committed, None when nothing could be charged (nothing written), or
    raises :class:`Refused` when the portable path must decide (nothing written either).
    """
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    params = _params(usage, entry_id=entry_id, reason=reason, day=day, now=now)
    params["low"] = low_threshold_micros
    sql, names = _REFUSING_RELAXED if relax_durability else _REFUSING_STRICT
    try:
        row = await driver.fetchrow(sql, *[params[name] for name in names])
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == REFUSED_SQLSTATE:
            raise Refused from None
        raise
    return None if row is None else _charged(row)


def _params(
    usage: OpenCall, *, entry_id: str, reason: str, day: str, now: datetime
) -> dict[str, Any]:
    return {
        "price": usage.price_micros,
        "agent_id": usage.agent_id,
        "usage_id": usage.id,
        "key_id": usage.key_id,
        "provider": usage.provider,
        "method": usage.method,
        "route": usage.route,
        "day": day,
        "now": now,
        "entry_id": entry_id,
        "reason": reason,
    }


def _charged(row: Sequence[Any]) -> Charged:
    return Charged(
        balance_after_micros=row[0],
        platform_id=row[1],
        agent_limit=row[2],
        platform_limit=row[3],
        agent_spent=row[4],
        platform_spent=row[5],
    )


async def charge_and_open(
    session: UnitOfWork,
    usage: OpenCall,
    *,
    entry_id: str,
    reason: str,
    day: str,
    now: datetime,
    relax_durability: bool,
) -> Charged | None:
    """Charge ``usage.price_micros`` and write everything, in the session's transaction; None
    when nothing could be charged (balance too low, or no such agent) and so nothing was
    written."""
    params = _params(usage, entry_id=entry_id, reason=reason, day=day, now=now)
    stmt = _RELAXED if relax_durability else _STRICT
    row = (await session.execute(stmt, params)).first()
    return None if row is None else _charged(row)
