"""The credit reservation as one PostgreSQL statement (the gateway's hot path).

Data-modifying CTEs do in one round trip what :func:`app.gateway.billing.reserve` does in
five on other databases: charge the balance (a conditional UPDATE that locks the agent row and
never goes below zero), write the pending usage row and the ``charge`` ledger entry, and bump
today's spend counters of the agent and its fleet (locked by the upsert). Every write hangs off
the charged agent row, so when the balance is too low nothing at all is written. The caller
checks the returned totals against the daily limits and rolls the transaction back when one is
exceeded; locks are taken in the same order as on the portable path (agent, then counters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from app.gateway.models import AGENT, PENDING, PLATFORM, GatewayUsage

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
SELECT agent.balance_micros,
       agent.platform_id,
       agent.daily_spending_limit_micros,
       (SELECT p.daily_spending_limit_micros FROM platforms p WHERE p.id = agent.platform_id),
       (SELECT s.spent_micros FROM spend s WHERE s.scope = 'agent'),
       (SELECT s.spent_micros FROM spend s WHERE s.scope = 'platform')
       {relax}
  FROM agent
"""

# The literals above are the models' constants.
assert (PENDING, AGENT, PLATFORM) == ("pending", "agent", "platform")

# ``set_config(..., true)`` is SET LOCAL as an expression: the relaxed variant switches the
# transaction to asynchronous commit in the same round trip. Only constant text is spliced in.
_STRICT = text(_CHARGE.format(relax=""))
_RELAXED = text(_CHARGE.format(relax=", set_config('synchronous_commit', 'off', true)"))


@dataclass(frozen=True, slots=True)
class Charged:
    balance_after_micros: int
    platform_id: str | None
    agent_limit: int | None
    platform_limit: int | None
    agent_spent: int | None
    platform_spent: int | None


async def charge_and_open(
    session: AsyncSession | AsyncConnection,
    usage: GatewayUsage,
    *,
    entry_id: str,
    reason: str,
    day: str,
    now: datetime,
    relax_durability: bool,
) -> Charged | None:
    """Charge ``usage.price_micros`` and write everything; None when nothing could be charged
    (balance too low, or no such agent) and so nothing was written. Runs on an ORM session or
    on a bare Core connection (the request path, see ``billing.reserve_fast``)."""
    params = {
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
    stmt = _RELAXED if relax_durability else _STRICT
    row = (await session.execute(stmt, params)).first()
    if row is None:
        return None
    return Charged(
        balance_after_micros=row[0],
        platform_id=row[1],
        agent_limit=row[2],
        platform_limit=row[3],
        agent_spent=row[4],
        platform_spent=row[5],
    )
