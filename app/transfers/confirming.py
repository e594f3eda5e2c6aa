"""Counting stored transfers once they have their confirmations, and undoing it after a reorg.

Nothing here commits: the watcher run (``app.transfers.watcher``) owns the transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import String, any_, bindparam, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql

from app.db.models.transfers import CONFIRMED, PENDING, REORGED, ChainTransfer
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.transfers.counting import Candidate, CountConflict, Counted, Counting, WatchContext
from app.transfers.repository import TRANSFERS
from app.transfers.storing import CHUNK

# Built once (Core UPDATEs, no ORM session sync), so a batch only binds its ids instead of
# coercing each into a new statement. SQLite takes the ids as an IN list, chunked under its
# parameter limit; PostgreSQL as one array (a long IN list costs it planning time).
_CONFIRM_VALUES = {
    "status": CONFIRMED, "confirmed_at": bindparam("now"), "updated_at": bindparam("now"),
    "purpose": bindparam("purpose"), "unmatched": bindparam("unmatched"),
    "agent_id": bindparam("agent_id"), "ledger_entry_id": bindparam("ledger_entry_id"),
    "reference": bindparam("reference"),
}
# Only rows still pending: a transfer is counted once, whoever else may have counted it.
_CONFIRM_IN = (
    update(TRANSFERS)
    .where(TRANSFERS.c.id.in_(bindparam("ids", expanding=True)),
           TRANSFERS.c.status == PENDING)
    .values(_CONFIRM_VALUES)
)
_CONFIRM_ANY = (
    update(TRANSFERS)
    .where(TRANSFERS.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(String))),
           TRANSFERS.c.status == PENDING)
    .values(_CONFIRM_VALUES)
)


async def confirm_ready(
    session: UnitOfWork, counting: Counting, ctx: WatchContext, up_to_block: int, limit: int
) -> int:
    """Count the oldest ``limit`` pending transfers at or below ``up_to_block``.

    Rows are read and written set-wise (one UPDATE per distinct outcome): a backfill of
    thousands of transfers must not cost an ORM round trip each. Raises
    :class:`~app.transfers.counting.CountConflict` (the caller must roll back) if any of them
    stopped being pending meanwhile.
    """
    t = TRANSFERS.c
    rows = (
        await session.execute(
            core_select(*(t[name] for name in Candidate._fields))
            .where(t.network == ctx.network, t.status == PENDING,
                   t.block_number <= up_to_block)
            .order_by(t.block_number, t.log_index)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    candidates = [Candidate._make(row) for row in rows]
    decided = await counting.count(session, candidates, ctx)
    groups: dict[Counted, list[str]] = {}
    for transfer_id, counted in decided.items():
        groups.setdefault(counted, []).append(transfer_id)
    now = utcnow()
    one_array = session.get_bind().dialect.name == "postgresql"
    statement, chunk = (_CONFIRM_ANY, limit) if one_array else (_CONFIRM_IN, CHUNK)
    updated = 0
    for counted, ids in groups.items():
        for start in range(0, len(ids), chunk):
            result = await session.execute(
                statement,
                {"ids": ids[start : start + chunk], "now": now,
                 "purpose": counted.purpose, "unmatched": counted.unmatched,
                 "agent_id": counted.agent_id, "ledger_entry_id": counted.ledger_entry_id,
                 "reference": counted.reference},
            )
            updated += result.rowcount  # type: ignore[attr-defined]  # CursorResult of an UPDATE
    if updated != len(rows):
        raise CountConflict(f"{len(rows) - updated} of {len(rows)} transfers counted here "
                            "were no longer pending")
    return len(rows)


async def orphan(
    session: UnitOfWork, transfers: Sequence[ChainTransfer], counting: Counting,
    ctx: WatchContext,
) -> int:
    """Mark transfers of orphaned blocks ``reorged`` and undo what counted ones caused."""
    now = utcnow()
    for transfer in transfers:
        if transfer.status == CONFIRMED and await counting.reverse(session, transfer, ctx):
            transfer.reversed_at = utcnow()
        transfer.status = REORGED
        transfer.reorged_at = now
        transfer.updated_at = now
        session.add(transfer)
    await session.flush()
    return len(transfers)
