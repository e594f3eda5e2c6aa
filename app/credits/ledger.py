"""The credit ledger: append-only entries, balance kept in step, never negative."""

from __future__ import annotations

from typing import Any, NamedTuple, NoReturn

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.credits.limits import MAX_BALANCE_MICROS
from app.db.models.agents import Agent
from app.db.models.credits import LedgerEntry
from app.db.uow import UnitOfWork
from app.errors import (
    BalanceLimitExceeded,
    Conflict,
    InsufficientCredits,
    NotFound,
    ValidationFailed,
)
from app.ids import new_id

# ``hold`` moves credits into a gateway credit lease, ``release`` gives back what it did not use
# (``app.gateway.leases``).
KINDS = frozenset({"grant", "deposit", "charge", "refund", "adjustment", "reversal", "hold",
                   "release"})


class Posted(NamedTuple):
    entry: LedgerEntry
    # The idempotency key already had this entry: nothing moved now, so whatever the caller
    # does once per credit (an event, an audit row) was done the first time.
    replayed: bool


async def post(
    session: UnitOfWork,
    agent_id: str,
    kind: str,
    amount_micros: int,
    *,
    idempotency_key: str | None = None,
    reference: str | None = None,
    reason: str | None = None,
    allow_negative: bool = False,
    allow_over_ceiling: bool = False,
) -> LedgerEntry:
    """:func:`post_result` for callers that act the same on a first post and a replay."""
    posted = await post_result(
        session, agent_id, kind, amount_micros, idempotency_key=idempotency_key,
        reference=reference, reason=reason, allow_negative=allow_negative,
        allow_over_ceiling=allow_over_ceiling,
    )
    return posted.entry


async def post_result(
    session: UnitOfWork,
    agent_id: str,
    kind: str,
    amount_micros: int,
    *,
    idempotency_key: str | None = None,
    reference: str | None = None,
    reason: str | None = None,
    allow_negative: bool = False,
    allow_over_ceiling: bool = False,
) -> Posted:
    """Append one entry and move the balance by ``amount_micros`` atomically.

    The balance update is a single conditional UPDATE, so concurrent charges from many
    processes can never take the balance below zero, nor credits above
    ``MAX_BALANCE_MICROS``. With an ``idempotency_key`` a repeated call (even a concurrent
    one) returns the first entry, marked replayed, instead of posting twice; a key already
    used for another agent, kind or amount is a :class:`Conflict`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if not isinstance(amount_micros, int) or isinstance(amount_micros, bool):
        raise ValidationFailed("amountMicros must be an integer number of USDC base units.")
    if idempotency_key is not None:
        replay = await _replay(session, idempotency_key, agent_id, kind, amount_micros)
        if replay is not None:
            return replay

    # Larger than any balance may be: refused before it reaches SQL, where it might not fit.
    in_range = abs(amount_micros) <= MAX_BALANCE_MICROS
    balance = await _move(session, agent_id, kind, amount_micros,
                          floor=not allow_negative,
                          ceiling=not allow_over_ceiling) if in_range else None
    if balance is None:
        if idempotency_key is not None:
            # The UPDATE may have waited on a concurrent post with this key and then failed
            # its condition on the balance that post left: that is a replay, not a refusal.
            replay = await _replay(session, idempotency_key, agent_id, kind, amount_micros)
            if replay is not None:
                return replay
        await _refuse(session, agent_id, amount_micros)
    entry = LedgerEntry(
        id=new_id("led"),
        agent_id=agent_id,
        kind=kind,
        amount_micros=amount_micros,
        balance_after_micros=balance,
        idempotency_key=idempotency_key,
        reference=reference,
        reason=reason,
    )
    if idempotency_key is None:
        session.add(entry)
        await session.flush()
        return Posted(entry, False)
    inserted = await _insert_unless_keyed(session, entry)
    if inserted is not None:
        return Posted(inserted, False)
    # A concurrent post with this key committed between our check and our insert. ON
    # CONFLICT DO NOTHING left the caller's transaction usable (a failed INSERT would abort
    # it on PostgreSQL); give back the balance we moved (the row is still locked by us) and
    # answer with the first entry.
    await _move(session, agent_id, kind, -amount_micros, floor=False, ceiling=False)
    replay = await _replay(session, idempotency_key, agent_id, kind, amount_micros)
    if replay is None:  # the conflict was with a row we cannot see: not a replay
        raise Conflict("A concurrent ledger post with this idempotency key did not settle.")
    return replay


async def _replay(
    session: UnitOfWork, idempotency_key: str, agent_id: str, kind: str, amount_micros: int
) -> Posted | None:
    """The first post with this key, as a replay (None: there is none)."""
    existing = (
        await session.exec(
            select(LedgerEntry).where(col(LedgerEntry.idempotency_key) == idempotency_key)
        )
    ).first()
    if existing is None:
        return None
    return Posted(_same_or_refuse(existing, agent_id, kind, amount_micros), True)


def _same_or_refuse(
    existing: LedgerEntry, agent_id: str, kind: str, amount_micros: int
) -> LedgerEntry:
    """The first entry, if the retry asks for the same credit; a reused key is a conflict,
    never a silent success for a credit that was not made."""
    differs = [
        name
        for name, asked, stored in (
            ("agentId", agent_id, existing.agent_id),
            ("kind", kind, existing.kind),
            ("amountMicros", amount_micros, existing.amount_micros),
        )
        if asked != stored
    ]
    if differs:
        raise Conflict(
            "This idempotency key was already used for a different ledger entry.",
            details={"ledgerEntryId": existing.id, "mismatched": differs},
        )
    return existing


async def _move(
    session: UnitOfWork, agent_id: str, kind: str, amount_micros: int, *,
    floor: bool, ceiling: bool,
) -> int | None:
    """Add ``amount_micros`` to the balance in one UPDATE; None when no row matched (no such
    agent, or the move would cross the floor of zero or the ceiling)."""
    stmt = (
        update(Agent)
        .where(col(Agent.id) == agent_id)
        .values(balance_micros=Agent.balance_micros + amount_micros)
        .returning(col(Agent.balance_micros))
    )
    if amount_micros < 0 and floor:
        stmt = stmt.where(col(Agent.balance_micros) >= -amount_micros)
    if amount_micros > 0 and ceiling:
        stmt = stmt.where(col(Agent.balance_micros) <= MAX_BALANCE_MICROS - amount_micros)
    if kind in ("charge", "refund"):
        # spent_micros counts charges net of refunds: a refund gives a charge back (the
        # gateway releases the reservation of a call that failed), so it is not spent.
        stmt = stmt.values(
            balance_micros=Agent.balance_micros + amount_micros,
            spent_micros=Agent.spent_micros - amount_micros,
        )
    balance: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return balance


async def _insert_unless_keyed(session: UnitOfWork, entry: LedgerEntry) -> LedgerEntry | None:
    """INSERT the entry unless its idempotency key is taken (then None), as one statement."""
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(LedgerEntry)
        .values(**entry.model_dump())
        .on_conflict_do_nothing(index_elements=[col(LedgerEntry.idempotency_key)])
        .returning(LedgerEntry)
    )
    inserted: LedgerEntry | None = (await session.execute(stmt)).scalars().first()
    return inserted


async def _refuse(session: UnitOfWork, agent_id: str, amount_micros: int) -> NoReturn:
    if amount_micros < 0:
        await refuse_charge(session, agent_id, -amount_micros)
    agent = await session.get(Agent, agent_id, populate_existing=True)
    if agent is None:
        raise NotFound("Agent not found.")
    raise BalanceLimitExceeded(
        f"A balance may not exceed {MAX_BALANCE_MICROS} micros.",
        details={"balanceMicros": agent.balance_micros, "amountMicros": amount_micros,
                 "maxBalanceMicros": MAX_BALANCE_MICROS},
    )


async def refuse_charge(session: UnitOfWork, agent_id: str, required_micros: int) -> NoReturn:
    """Say why a conditional charge matched no row: no such agent, or too little credit."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("Agent not found.")
    raise InsufficientCredits(
        "Credit balance too low.",
        details={"balanceMicros": agent.balance_micros, "requiredMicros": required_micros},
    )
