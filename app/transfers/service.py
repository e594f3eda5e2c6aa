"""SQL of the chain watchers: storing transfers, cursors, block hashes, reorgs, and queries.

Nothing here commits: the watcher run (``app.transfers.watcher``) and the request own the
transactions.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, any_, bindparam, delete, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.db.models.agents import Agent
from app.db.models.transfers import (
    CONFIRMED,
    PENDING,
    REORGED,
    ChainBlock,
    ChainTransfer,
    ChainWatcher,
)
from app.db.paging import PageParams, apply, split
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.transfers import purposes
from app.transfers.bulk import BulkInsert
from chain.records import TransferLog

# A uint256 beyond BIGINT is stored exactly in ``value`` but never credited automatically.
_MAX_MICROS = 2**63 - 1
# Rows per INSERT statement when storing a big range of logs.
_INSERT_CHUNK = 1000


# -- watcher state ------------------------------------------------------------------------


async def get_watcher(session: UnitOfWork, network: str) -> ChainWatcher | None:
    return await session.get(ChainWatcher, network)


async def ensure_watcher(session: UnitOfWork, network: str, chain_id: int) -> ChainWatcher:
    """The watcher row, created on first use (concurrent creators: one insert wins)."""
    watcher = await session.get(ChainWatcher, network)
    if watcher is not None:
        return watcher
    await session.execute(
        _insert(session, ChainWatcher)
        .values(network=network, chain_id=chain_id, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["network"])
    )
    watcher = await session.get(ChainWatcher, network)
    assert watcher is not None
    return watcher


async def acquire_lease(
    session: UnitOfWork, network: str, owner: str, now: datetime, seconds: float,
    *, due_only: bool,
) -> bool:
    """Take the run lease unless another run holds it (or, with ``due_only``, unless the next
    run is not due yet). One conditional UPDATE, so two runs can never both win."""
    stmt = (
        update(ChainWatcher)
        .where(col(ChainWatcher.network) == network)
        .where(or_(col(ChainWatcher.lease_until).is_(None), col(ChainWatcher.lease_until) < now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds), last_run_at=now)
    )
    if due_only:
        stmt = stmt.where(
            or_(col(ChainWatcher.next_run_at).is_(None), col(ChainWatcher.next_run_at) <= now)
        )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def release_lease(session: UnitOfWork, network: str, owner: str) -> None:
    await session.execute(
        update(ChainWatcher)
        .where(col(ChainWatcher.network) == network, col(ChainWatcher.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def list_watchers(session: UnitOfWork) -> list[ChainWatcher]:
    rows = (await session.exec(select(ChainWatcher).order_by(col(ChainWatcher.network)))).all()
    return list(rows)


# -- storing ------------------------------------------------------------------------------


def _insert(session: UnitOfWork, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every two-digit Crockford suffix: the last 10 bits of consecutive ids.
_SUFFIXES = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def _crockford(value: int, digits: int) -> str:
    chars = []
    for _ in range(digits):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _transfer_ids(count: int) -> list[str]:
    """``count`` ``trf_`` ids in ULID format, in increasing order (the same shape ``new_id``
    makes, minus its per-call cost, which dominates storing a large backfill)."""
    base = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(9), "big")
    ids: list[str] = []
    value, end = base, base + count
    # Consecutive numbers share all but their last two digits for runs of up to 1,024: encode
    # the 24-digit prefix once per run, and append a precomputed suffix per id.
    while value < end:
        high = value >> 10
        prefix = "trf_" + _crockford(high, 24)
        stop = min(end, (high + 1) << 10)
        ids += [prefix + _SUFFIXES[number & 1023] for number in range(value, stop)]
        value = stop
    return ids


# A new transfer's row is its purposes.Candidate (same fields, same order); the rest of the
# columns are the same for every row of a batch.
_TRANSFER_INSERT = BulkInsert(
    ChainTransfer.__table__,  # type: ignore[attr-defined]  # SQLModel tables have it
    purposes.Candidate._fields,
    conflict=("chain_id", "tx_hash", "log_index"),
)


def _candidates(
    ctx: purposes.PurposeContext, logs: Sequence[TransferLog]
) -> list[purposes.Candidate]:
    """New transfers' rows, one tuple each, made in one pass: a backfill stores tens of
    thousands per range, and every Python call per row shows in its time."""
    network, chain_id, candidate = ctx.network, ctx.chain_id, purposes.Candidate
    new = tuple.__new__  # what the NamedTuple's own __new__ ends in, minus a Python call per row
    return [
        new(candidate, (transfer_id, network, chain_id, log.tx_hash, log.log_index,
                        log.block_number, log.from_address.lower(), log.to_address.lower(),
                        value if (value := log.value) <= _MAX_MICROS else None,
                        0,  # epoch: a new transfer's first life
                        log.block_hash, str(value)))
        for log, transfer_id in zip(logs, _transfer_ids(len(logs)), strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing a range did: rows new or revived, and how many of them it counted."""

    stored: int
    confirmed: int


class CountConflict(Exception):
    """Some transfers just counted were not written (another writer stored or counted them
    first). Their effects were applied in this transaction, which must be rolled back."""


class StoreConflict(CountConflict):
    """Raised by :func:`store_logs`: storing the range again without counting on insert is
    always safe."""


async def store_logs(
    session: UnitOfWork,
    ctx: purposes.PurposeContext,
    logs: Sequence[TransferLog],
    *,
    confirmed_up_to: int | None = None,
) -> Stored:
    """Store new transfers; returns how many rows were new or revived, and how many of them
    were counted.

    New transfers in blocks at or below ``confirmed_up_to`` already have their confirmations:
    they are counted through their purpose here, in the caller's transaction, and inserted in
    their final state, so a backfill neither reads them back nor updates them again. Only rows
    this statement inserts may have been counted: if any of them was not inserted (its key was
    stored concurrently), :class:`StoreConflict` is raised and the caller must roll back. The
    others are stored ``pending`` for :func:`confirm_ready`.

    Known (chain, tx, log index) keys are no-ops, except a transfer marked ``reorged`` that
    shows up again (its transaction was mined anew): it is revived as ``pending`` in its new
    block with ``epoch`` + 1, so it is counted again under fresh ledger keys.
    """
    if not logs:
        return Stored(0, 0)
    now = utcnow()
    chain_id = ctx.chain_id
    t = ChainTransfer.__table__  # type: ignore[attr-defined]  # SQLModel tables have it
    # Which keys exist already: one indexed lookup per chunk of distinct tx hashes (re-scans
    # and reorgs make this non-empty; a fresh range usually finds nothing).
    hashes = sorted({log.tx_hash for log in logs})
    known: set[tuple[str, int]] = set()
    for start in range(0, len(hashes), _INSERT_CHUNK):
        rows = await session.execute(
            core_select(t.c.tx_hash, t.c.log_index).where(
                t.c.chain_id == chain_id, t.c.tx_hash.in_(hashes[start : start + _INSERT_CHUNK])
            )
        )
        known.update((row[0], row[1]) for row in rows.all())
    if known:
        fresh = [log for log in logs if (log.tx_hash, log.log_index) not in known]
        again = [log for log in logs if (log.tx_hash, log.log_index) in known]
    else:
        fresh, again = list(logs), []
    shared = {"seen_at": now, "updated_at": now}
    inserted = confirmed = 0
    if fresh:
        fresh_rows = _candidates(ctx, fresh)
        if confirmed_up_to is None:
            ready: list[purposes.Candidate] = []
            waiting = fresh_rows
        else:
            ready = [row for row in fresh_rows if row.block_number <= confirmed_up_to]
            waiting = (
                [row for row in fresh_rows if row.block_number > confirmed_up_to]
                if ready else fresh_rows
            )
        if ready:
            decided = await purposes.confirm(session, ready, ctx)
            # Grouped by identity: purposes share one instance per common outcome, and hashing
            # a dataclass per row costs more than a few extra statements for equal copies.
            groups: dict[int, tuple[purposes.Counted, list[purposes.Candidate]]] = {}
            for row in ready:
                counted = decided[row.id]
                group = groups.get(id(counted))
                if group is None:
                    group = groups[id(counted)] = (counted, [])
                group[1].append(row)
            for counted, group_rows in groups.values():
                done = await _TRANSFER_INSERT.execute(session, group_rows, {
                    **shared, "status": CONFIRMED, "confirmed_at": now,
                    "purpose": counted.purpose, "unmatched": counted.unmatched,
                    "agent_id": counted.agent_id, "ledger_entry_id": counted.ledger_entry_id,
                    "reference": counted.reference,
                })
                if done != len(group_rows):
                    raise StoreConflict(f"{len(group_rows) - done} of {len(group_rows)} transfers "
                                        "counted on insert were stored concurrently")
            inserted = confirmed = len(ready)
        # ON CONFLICT keeps a concurrent writer (there should be none: runs hold a lease) from
        # failing the range; a pending row it skips was counted by nobody here.
        inserted += await _TRANSFER_INSERT.execute(
            session, waiting, {**shared, "status": PENDING, "unmatched": False}
        )
    return Stored(inserted + await _revive(session, chain_id, again, now), confirmed)


async def _revive(
    session: UnitOfWork, chain_id: int, logs: Sequence[TransferLog], now: datetime
) -> int:
    if not logs:
        return 0
    by_key = {(log.tx_hash, log.log_index): log for log in logs}
    revived = 0
    hashes = sorted({log.tx_hash for log in logs})
    for start in range(0, len(hashes), _INSERT_CHUNK):
        rows = (
            await session.exec(
                select(ChainTransfer).where(
                    col(ChainTransfer.chain_id) == chain_id,
                    col(ChainTransfer.status) == REORGED,
                    col(ChainTransfer.tx_hash).in_(hashes[start : start + _INSERT_CHUNK]),
                )
            )
        ).all()
        for transfer in rows:
            log = by_key.get((transfer.tx_hash, transfer.log_index))
            if log is None:
                continue
            transfer.block_number = log.block_number
            transfer.block_hash = log.block_hash
            transfer.status = PENDING
            transfer.epoch += 1
            transfer.purpose = None
            transfer.unmatched = False
            transfer.agent_id = None
            transfer.ledger_entry_id = None
            transfer.reference = None
            transfer.confirmed_at = None
            transfer.updated_at = now
            session.add(transfer)
            revived += 1
    return revived


async def remember_blocks(session: UnitOfWork, network: str, blocks: Mapping[int, str]) -> None:
    """Remember block hashes (a re-scan may see a block again: the newest hash wins)."""
    if not blocks:
        return
    numbers = sorted(blocks)
    await session.execute(
        delete(ChainBlock).where(
            col(ChainBlock.network) == network, col(ChainBlock.number).in_(numbers)
        )
    )
    await session.execute(
        _insert(session, ChainBlock).values(
            [{"network": network, "number": n, "hash": blocks[n]} for n in numbers]
        )
    )


async def recent_blocks(session: UnitOfWork, network: str) -> list[ChainBlock]:
    rows = await session.exec(
        select(ChainBlock).where(col(ChainBlock.network) == network).order_by(
            col(ChainBlock.number)
        )
    )
    return list(rows.all())


async def forget_blocks(
    session: UnitOfWork, network: str, *, below: int | None = None, above: int | None = None
) -> None:
    stmt = delete(ChainBlock).where(col(ChainBlock.network) == network)
    if below is not None:
        stmt = stmt.where(col(ChainBlock.number) < below)
    if above is not None:
        stmt = stmt.where(col(ChainBlock.number) > above)
    await session.execute(stmt)


# -- confirmations and reorgs -------------------------------------------------------------


_TRANSFERS = ChainTransfer.__table__  # type: ignore[attr-defined]  # SQLModel tables have it
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
    update(_TRANSFERS)
    .where(_TRANSFERS.c.id.in_(bindparam("ids", expanding=True)),
           _TRANSFERS.c.status == PENDING)
    .values(_CONFIRM_VALUES)
)
_CONFIRM_ANY = (
    update(_TRANSFERS)
    .where(_TRANSFERS.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(String))),
           _TRANSFERS.c.status == PENDING)
    .values(_CONFIRM_VALUES)
)


async def confirm_ready(
    session: UnitOfWork, ctx: purposes.PurposeContext, up_to_block: int, limit: int
) -> int:
    """Count the oldest ``limit`` pending transfers at or below ``up_to_block``.

    Rows are read and written set-wise (one UPDATE per distinct outcome): a backfill of
    thousands of transfers must not cost an ORM round trip each. Raises
    :class:`CountConflict` (the caller must roll back) if any of them stopped being pending
    meanwhile.
    """
    t = ChainTransfer.__table__.c  # type: ignore[attr-defined]  # SQLModel tables have it
    rows = (
        await session.execute(
            core_select(*(t[name] for name in purposes.Candidate._fields))
            .where(t.network == ctx.network, t.status == PENDING,
                   t.block_number <= up_to_block)
            .order_by(t.block_number, t.log_index)
            .limit(limit)
        )
    ).all()
    if not rows:
        return 0
    candidates = [purposes.Candidate._make(row) for row in rows]
    decided = await purposes.confirm(session, candidates, ctx)
    groups: dict[purposes.Counted, list[str]] = {}
    for transfer_id, counted in decided.items():
        groups.setdefault(counted, []).append(transfer_id)
    now = utcnow()
    one_array = session.get_bind().dialect.name == "postgresql"
    statement, chunk = (_CONFIRM_ANY, limit) if one_array else (_CONFIRM_IN, _INSERT_CHUNK)
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


async def transfers_above(
    session: UnitOfWork, network: str, block: int
) -> list[ChainTransfer]:
    """Live (not reorged) transfers in blocks above ``block``: the ones a reorg may orphan."""
    rows = await session.exec(
        select(ChainTransfer).where(
            col(ChainTransfer.network) == network,
            col(ChainTransfer.status) != REORGED,
            col(ChainTransfer.block_number) > block,
        )
    )
    return list(rows.all())


async def orphan(
    session: UnitOfWork, transfers: Sequence[ChainTransfer], ctx: purposes.PurposeContext
) -> int:
    """Mark transfers of orphaned blocks ``reorged`` and undo what counted ones caused."""
    now = utcnow()
    for transfer in transfers:
        if transfer.status == CONFIRMED:
            await purposes.reverse(session, transfer, ctx)
        transfer.status = REORGED
        transfer.reorged_at = now
        transfer.updated_at = now
        session.add(transfer)
    await session.flush()
    return len(transfers)


# -- queries and operator actions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransferFilter:
    network: str | None = None
    status: str | None = None
    from_address: str | None = None
    to_address: str | None = None
    unmatched: bool | None = None
    agent_id: str | None = None
    tx_hash: str | None = None


async def search(
    session: UnitOfWork, params: PageParams, where: TransferFilter
) -> tuple[list[ChainTransfer], str | None]:
    stmt = select(ChainTransfer)
    if where.network:
        stmt = stmt.where(col(ChainTransfer.network) == where.network)
    if where.status:
        stmt = stmt.where(col(ChainTransfer.status) == where.status)
    if where.from_address:
        stmt = stmt.where(col(ChainTransfer.from_address) == where.from_address.lower())
    if where.to_address:
        stmt = stmt.where(col(ChainTransfer.to_address) == where.to_address.lower())
    if where.unmatched is not None:
        stmt = stmt.where(col(ChainTransfer.unmatched) == where.unmatched)
    if where.agent_id:
        stmt = stmt.where(col(ChainTransfer.agent_id) == where.agent_id)
    if where.tx_hash:
        stmt = stmt.where(col(ChainTransfer.tx_hash) == where.tx_hash.lower())
    rows = (await session.exec(apply(stmt, col(ChainTransfer.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda t: t.id)


async def get(session: UnitOfWork, transfer_id: str) -> ChainTransfer:
    transfer = await session.get(ChainTransfer, transfer_id)
    if transfer is None:
        raise NotFound("Transfer not found.")
    return transfer


def snapshot(transfer: ChainTransfer) -> dict[str, Any]:
    """What the audit log keeps of a transfer before/after an operator action."""
    return {
        "status": transfer.status,
        "purpose": transfer.purpose,
        "unmatched": transfer.unmatched,
        "agentId": transfer.agent_id,
        "ledgerEntryId": transfer.ledger_entry_id,
    }


async def assign(
    session: UnitOfWork, transfer: ChainTransfer, agent_id: str, reason: str
) -> ChainTransfer:
    """Credit an unmatched, confirmed deposit to an agent (the operator's decision).

    The row is locked first so two operators cannot both assign it; the ledger key is the one
    the automatic credit uses, so a transfer can never be credited twice either way.
    """
    # Re-read under a row lock (PostgreSQL; SQLite serialises writers anyway).
    await session.refresh(transfer, with_for_update=True)
    locked = transfer
    if locked.status != CONFIRMED or not locked.unmatched:
        raise Conflict("Only a confirmed, unmatched transfer can be assigned.")
    if locked.amount_micros is None or locked.amount_micros <= 0:
        raise Conflict("This transfer's amount cannot be credited.")
    if await session.get(Agent, agent_id) is None:
        raise ValidationFailed("agentId does not name an agent.")
    entry = await purposes.credit_deposit(session, locked, agent_id, reason=reason)
    locked.purpose = purposes.DEPOSIT
    locked.agent_id = agent_id
    locked.ledger_entry_id = entry.id
    locked.unmatched = False
    locked.updated_at = utcnow()
    session.add(locked)
    await session.flush()
    return locked


async def adopt(
    session: UnitOfWork, chain_id: int, tx_hash: str, log_index: int,
    counted: purposes.Counted,
) -> str | None:
    """Give a transfer the watcher already counted as unclaimed to ``counted``'s purpose (a
    pushed payment named after its transfer was counted), so a reorg reverses it through that
    purpose and an operator can no longer assign it.

    Returns the purpose the transfer now counts for, or None while it is not counted (stored
    pending, reorged, or not seen yet: the watcher's purposes will claim it).
    """
    t = _TRANSFERS.c
    key = (t.chain_id == chain_id, t.tx_hash == tx_hash.lower(), t.log_index == log_index)
    # One conditional UPDATE: an operator's concurrent assign (row-locked) wins or loses whole.
    result = await session.execute(
        update(_TRANSFERS)
        .where(*key, t.status == CONFIRMED, t.purpose == purposes.UNKNOWN,
               t.unmatched.is_(True))
        .values(purpose=counted.purpose, unmatched=counted.unmatched,
                agent_id=counted.agent_id, reference=counted.reference, updated_at=utcnow())
    )
    if result.rowcount:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return counted.purpose
    row = (await session.execute(core_select(t.status, t.purpose).where(*key))).first()
    if row is None or row.status != CONFIRMED:
        return None
    return str(row.purpose)


def rewind_ceiling(watcher: ChainWatcher, start_block: int | None) -> int | None:
    """The highest block a rewind may name: the next block the watcher would scan anyway.

    A rewind only re-scans; naming a higher block would make the watcher skip the blocks in
    between. A watcher that has never run scans from its configured start block, or else from
    the head it sees first (at least any head it stored). None: nothing bounds it yet.
    """
    if watcher.cursor is not None:
        return watcher.cursor + 1
    if start_block is not None:
        return start_block
    return watcher.head


async def rewind(
    session: UnitOfWork, network: str, chain_id: int, block: int,
    *, start_block: int | None = None,
) -> tuple[ChainWatcher, int | None]:
    """Re-scan from ``block``: the cursor moves to ``block - 1`` (only ever backwards).

    ``start_block`` is the network's configured first block, which bounds a rewind of a
    watcher that has not scanned yet. Stored transfers stay; the re-scan finds them again as
    no-ops, and adds whatever a provider had left out. Returns the watcher and its previous
    cursor.
    """
    if block < 0:
        raise ValidationFailed("block must be >= 0.")
    locked = await ensure_watcher(session, network, chain_id)
    await session.refresh(locked, with_for_update=True)
    before = locked.cursor
    ceiling = rewind_ceiling(locked, start_block)
    if ceiling is None:
        raise Conflict(f"The {network} watcher has not scanned any block yet: nothing to rewind.")
    if block > ceiling:
        what = "the cursor + 1" if before is not None else "the first block it will scan"
        raise ValidationFailed(f"block must be at or below {what} ({ceiling}).")
    locked.cursor = block - 1
    locked.next_run_at = None
    locked.updated_at = utcnow()
    session.add(locked)
    await forget_blocks(session, network, above=block - 1)
    await session.flush()
    return locked, before


async def counts_by_status(session: UnitOfWork, network: str) -> dict[str, int]:
    rows = await session.execute(
        select(ChainTransfer.status, func.count())
        .where(col(ChainTransfer.network) == network)
        .group_by(ChainTransfer.status)
    )
    return {str(status): int(count) for status, count in rows.all()}


async def watcher_states(
    session: UnitOfWork, networks: Sequence[str]
) -> dict[str, ChainWatcher]:
    """The stored state of each named network's watcher (missing: never ran)."""
    if not networks:
        return {}
    rows = await session.exec(
        select(ChainWatcher).where(col(ChainWatcher.network).in_(list(networks)))
    )
    return {row.network: row for row in rows.all()}
