"""Storing a scanned range's transfers, counting on insert those that have their confirmations.

Nothing here commits: the watcher run (``app.transfers.watcher``) stores each range, remembers
its blocks and moves its cursor in one transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select as core_select
from sqlmodel import col, select

from app.db.models.transfers import CONFIRMED, PENDING, REORGED, ChainTransfer
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.transfers.bulk import BulkInsert
from app.transfers.counting import Candidate, CountConflict, Counted, Counting, WatchContext
from chain.records import TransferLog

# A uint256 beyond BIGINT is stored exactly in ``value`` but never credited automatically.
_MAX_MICROS = 2**63 - 1
# Rows per statement when storing or reading back a big range of logs.
CHUNK = 1000


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every two-digit Crockford suffix: the last 10 bits of consecutive ids.
_SUFFIXES = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def _crockford(value: int, digits: int) -> str:
    chars = []
    for _ in range(digits):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def transfer_ids(count: int) -> list[str]:
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


# A new transfer's row is its Candidate (same fields, same order); the rest of the columns are
# the same for every row of a batch.
_TRANSFER_INSERT = BulkInsert(
    ChainTransfer.__table__,  # type: ignore[attr-defined]  # SQLModel tables have it
    Candidate._fields,
    conflict=("chain_id", "tx_hash", "log_index"),
)


def _candidates(ctx: WatchContext, logs: Sequence[TransferLog]) -> list[Candidate]:
    """New transfers' rows, one tuple each, made in one pass: a backfill stores tens of
    thousands per range, and every Python call per row shows in its time."""
    network, chain_id, candidate = ctx.network, ctx.chain_id, Candidate
    new = tuple.__new__  # what the NamedTuple's own __new__ ends in, minus a Python call per row
    return [
        new(candidate, (transfer_id, network, chain_id, log.tx_hash, log.log_index,
                        log.block_number, log.from_address.lower(), log.to_address.lower(),
                        value if (value := log.value) <= _MAX_MICROS else None,
                        0,  # epoch: a new transfer's first life
                        log.block_hash, str(value)))
        for log, transfer_id in zip(logs, transfer_ids(len(logs)), strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing a range did: rows new or revived, and how many of them it counted."""

    stored: int
    confirmed: int


class StoreConflict(CountConflict):
    """Raised by :func:`store_logs`: storing the range again without counting on insert is
    always safe."""


async def store_logs(
    session: UnitOfWork,
    counting: Counting,
    ctx: WatchContext,
    logs: Sequence[TransferLog],
    *,
    confirmed_up_to: int | None = None,
) -> Stored:
    """Store new transfers; returns how many rows were new or revived, and how many of them
    were counted.

    New transfers in blocks at or below ``confirmed_up_to`` already have their confirmations:
    they are counted through ``counting`` here, in the caller's transaction, and inserted in
    their final state, so a backfill neither reads them back nor updates them again. Only rows
    this statement inserts may have been counted: if any of them was not inserted (its key was
    stored concurrently), :class:`StoreConflict` is raised and the caller must roll back. The
    others are stored ``pending`` for ``app.transfers.confirming.confirm_ready``.

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
    for start in range(0, len(hashes), CHUNK):
        rows = await session.execute(
            core_select(t.c.tx_hash, t.c.log_index).where(
                t.c.chain_id == chain_id, t.c.tx_hash.in_(hashes[start : start + CHUNK])
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
            ready: list[Candidate] = []
            waiting = fresh_rows
        else:
            ready = [row for row in fresh_rows if row.block_number <= confirmed_up_to]
            waiting = (
                [row for row in fresh_rows if row.block_number > confirmed_up_to]
                if ready else fresh_rows
            )
        if ready:
            decided = await counting.count(session, ready, ctx)
            # Grouped by identity: counting shares one instance per common outcome, and hashing
            # a dataclass per row costs more than a few extra statements for equal copies.
            groups: dict[int, tuple[Counted, list[Candidate]]] = {}
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
    for start in range(0, len(hashes), CHUNK):
        rows = (
            await session.exec(
                select(ChainTransfer).where(
                    col(ChainTransfer.chain_id) == chain_id,
                    col(ChainTransfer.status) == REORGED,
                    col(ChainTransfer.tx_hash).in_(hashes[start : start + CHUNK]),
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
