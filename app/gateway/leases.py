"""Credit leases: an API process takes credits from a balance once and pays many calls from
them in memory (``app.gateway.lease_pool``), instead of one locked reservation per call.

Why: a per-call reservation takes the agent's row lock (and its fleet's counter lock) for
every call, so one busy key, or one busy fleet, is served one call at a time whatever the
number of API processes. A lease takes those locks once per many calls.

What still holds, across any number of processes and machines:

- **never overdrawn, never over a limit**: taking a lease is one transaction that locks the
  agent's row and today's counters, moves the amount out of the balance (a ``hold`` ledger
  entry) and counts all of it against today's agent and fleet limits at once. A process then
  never admits more calls than its lease pays for. Near exhaustion or near a limit leases shrink
  to a quarter of what is left, and to one call's price at the end, so the last credits are not
  stranded in one process while another refuses calls;
- **failed calls are free**: a lease's ``used_micros`` counts only calls whose upstream answered
  2xx; closing gives back everything else (a ``release`` entry, the counters lowered);
- **bounded loss on a crash**: a process records its calls in batches off the request path
  (every ~250 ms). If it dies, calls it served but had not recorded are never charged: at most
  what its leases of that agent held, ``gateway_lease_max_micros`` each (one current lease per
  agent, plus a used-up one whose last calls are still running). A live process extends the
  expiry of leases whose calls are still running; the sweeper closes leases whose process
  stopped doing so, which returns what they had not used;
- **honest balances**: ``/v1/balance`` and the admin API show what open leases hold beside the
  balance and what was spent; balance + held + spent is what the agent was ever credited.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.credits import ledger
from app.db.models.gateway import AGENT, LEASE_CLOSED, LEASE_OPEN, PLATFORM, CreditLease
from app.db.paging import PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import NotFound, ValidationFailed
from app.gateway import lease_store, repository
from app.gateway.reservations import check_limits, credits_low, crosses_low, spend_day
from app.ids import new_id
from app.metrics.instruments import gateway_lease

log = logging.getLogger("passgate.gateway")

# Who closed a lease.
BY_HOLDER = "holder"
BY_SWEEPER = "sweeper"


@dataclass(frozen=True, slots=True)
class Taken:
    lease_id: str
    agent_id: str
    platform_id: str | None
    day: str
    amount_micros: int
    expires_at: datetime


def lease_size(price: int, desired: int, balance: int, headrooms: Sequence[int]) -> int:
    """How much to take: a whole number of calls at ``price``, at most ``desired``, at most a
    quarter of the balance and of each limit's headroom, and at least one call."""
    cap = min([desired, balance // 4, *(room // 4 for room in headrooms)])
    return max(1, cap // price) * price


class LeaseTooLarge(Exception):
    """Today's counters moved between their read and the lease: a lease of more than one call
    would pass a limit. Nothing was written; take one call's worth instead."""


async def take(
    session: UnitOfWork,
    agent_id: str,
    *,
    price: int,
    desired: int,
    holder: str,
    lease_seconds: float,
    low_threshold_micros: int,
    relax_durability: bool = False,
) -> Taken:
    """Take a lease of at least ``price`` (else the per-call path's errors:
    INSUFFICIENT_CREDITS, SPENDING_LIMIT_EXCEEDED), in the caller's transaction.

    The agent's row is locked first and today's counters last, just before the commit (the
    per-call path's order): the fleet's counter is shared by every agent of a platform in every
    process, so it is held for one statement and the commit, not for the whole take. The size
    is decided on the counters as read before; their locked totals then decide (a lease that
    would pass a limit raises :class:`LeaseTooLarge`, or SPENDING_LIMIT_EXCEEDED for one call).
    ``relax_durability`` (PostgreSQL): commit without waiting for the WAL flush; a take the
    database then forgets leaves a lease nobody holds in the database, whose calls are recorded
    free (the agent's favour, as for a reservation).
    """
    now = utcnow()
    if relax_durability:
        await lease_store.relax_durability(session)
    limits = await lease_store.lock_holder(session, agent_id)
    if limits is None:
        raise NotFound("Agent not found.")
    balance = limits.balance_micros
    day = spend_day(now)
    owners = repository.spend_owners(agent_id, limits.platform_id)
    if balance < price:
        await ledger.refuse_charge(session, agent_id, price)
    spent = await lease_store.spent_today(session, owners, day)
    checks = _checks(limits, spent.get(AGENT, 0) + price, spent.get(PLATFORM, 0) + price)
    check_limits(checks, price, now)
    headrooms = [limit - (total - price) for _, limit, total in checks
                 if limit is not None and total is not None]
    amount = lease_size(price, desired, balance, headrooms)
    lease_id = new_id("lse")
    entry = await ledger.post(session, agent_id, "hold", -amount, reference=lease_id,
                              reason="gateway credit lease")
    await lease_store.hold(session, agent_id, amount)
    expires_at = now + timedelta(seconds=lease_seconds)
    await lease_store.insert_lease(session, CreditLease(
        id=lease_id, agent_id=agent_id, platform_id=limits.platform_id, holder=holder, day=day,
        amount_micros=amount, used_micros=0, created_at=now, expires_at=expires_at,
    ))
    balance_after = entry.balance_after_micros
    if crosses_low(balance_after, amount, low_threshold_micros):
        await credits_low(session, agent_id, balance_after, low_threshold_micros, now)
    totals = await repository.add_spend(session, owners, day, amount)
    final = _checks(limits, totals.get(AGENT), totals.get(PLATFORM))
    if amount > price and any(limit is not None and total is not None and total > limit
                              for _, limit, total in final):
        raise LeaseTooLarge
    check_limits(final, price, now)
    return Taken(lease_id=lease_id, agent_id=agent_id, platform_id=limits.platform_id, day=day,
                 amount_micros=amount, expires_at=expires_at)


def _checks(
    limits: lease_store.Holder, agent_total: int | None, platform_total: int | None
) -> tuple[tuple[str, int | None, int | None], ...]:
    return ((AGENT, limits.agent_limit, agent_total),
            (PLATFORM, limits.platform_limit,
             platform_total if limits.platform_id is not None else None))


async def record(
    session: UnitOfWork, calls: Sequence[dict[str, Any]], *, retried: bool = False
) -> None:
    """Write finished calls paid from leases (usage rows with ``lease_id`` and ``cost_micros``)
    and add what they cost to their leases' use.

    A call whose lease was closed meanwhile (the sweeper took it for abandoned) is recorded at
    no cost: what the lease had not used went back already. ``retried``: the batch failed
    before, perhaps after its commit went through, so calls already written are left out
    (a retry never counts a call twice, nor fails for ever on its own rows).
    """
    if retried:
        written = await lease_store.written_calls(session, [row["id"] for row in calls])
        calls = [row for row in calls if row["id"] not in written]
    used: dict[str, int] = defaultdict(int)
    for row in calls:
        if row["cost_micros"]:
            used[row["lease_id"]] += row["cost_micros"]
    still_open = await lease_store.add_used(session, used)
    rows = [row if row["cost_micros"] == 0 or row["lease_id"] in still_open
            else {**row, "cost_micros": 0, "error": "lease_closed"} for row in calls]
    free = sum(1 for row in rows if row.get("error") == "lease_closed")
    if free:
        log.warning("%d gateway calls recorded free: their lease was closed before them", free)
        gateway_lease("calls_free", count=free)
    await lease_store.insert_calls(session, rows)


async def close(
    session: UnitOfWork, lease_id: str, by: str = BY_HOLDER, *, relax_durability: bool = False
) -> int | None:
    """Give back what the lease did not use (returned) and count what it did as spent. None: it
    was closed already (by its process or the sweeper; exactly one of them does it). Locks: the
    lease, the agent, today's counters last."""
    if relax_durability:
        await lease_store.relax_durability(session)
    closed = await lease_store.close(session, lease_id, by, utcnow())
    if closed is None:
        return None
    used = min(closed.used_micros, closed.amount_micros)
    unused = closed.amount_micros - used
    if unused:
        # Past the balance ceiling if need be: these credits were in the balance a moment ago
        # (a deposit meanwhile must not keep them held forever).
        # Once: the lease row's state flipped in this same transaction.
        await ledger.post(session, closed.agent_id, "release", unused, reference=lease_id,
                          reason="gateway credit lease: not used", allow_over_ceiling=True)
    await lease_store.unhold(session, closed.agent_id, closed.amount_micros, used)
    if unused:
        await repository.remove_spend(
            session, repository.spend_owners(closed.agent_id, closed.platform_id), closed.day,
            unused)
    return unused


async def close_abandoned(session: UnitOfWork, lease_id: str) -> bool:
    """The sweeper's close of a lease its process left open past its expiry."""
    returned = await close(session, lease_id, BY_SWEEPER)
    if returned is None:
        return False
    gateway_lease("swept", micros=returned)
    return True


async def extend(session: UnitOfWork, lease_ids: Sequence[str], seconds: float) -> None:
    """Its process is alive and calls on these leases are still running: keep the sweeper off
    them for ``seconds`` more."""
    await lease_store.extend(session, lease_ids, utcnow() + timedelta(seconds=seconds))


async def abandoned(
    sessions: async_sessionmaker[UnitOfWork], grace_seconds: float, batch: int = 500
) -> list[str]:
    """Open leases past their expiry by more than ``grace_seconds``: their process stopped
    extending them (it died, or lost the database) while calls may have been running."""
    before = utcnow() - timedelta(seconds=grace_seconds)
    async with sessions() as session:
        return await lease_store.expired_ids(session, before, batch)


async def listing(
    session: UnitOfWork, params: PageParams, *, agent_id: str | None, state: str | None
) -> tuple[list[CreditLease], str | None]:
    """Leases newest first, of one agent or all, open or closed (the operator's view)."""
    if state not in (None, "", LEASE_OPEN, LEASE_CLOSED):
        raise ValidationFailed(f"state must be {LEASE_OPEN} or {LEASE_CLOSED}.")
    return await lease_store.search(session, params, agent_id=agent_id, state=state)
