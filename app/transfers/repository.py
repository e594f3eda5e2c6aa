"""SQL of the chain watchers: their state rows, the block hashes they remember, transfer reads.

Storing and counting transfers in bulk is :mod:`app.transfers.storing` and
:mod:`app.transfers.confirming`. Nothing here commits: the watcher run
(``app.transfers.watcher``) and the request own the transactions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.db.models.transfers import CONFIRMED, REORGED, ChainBlock, ChainTransfer, ChainWatcher
from app.db.paging import PageParams
from app.db.queries import get_or_404, page, where_equal
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.transfers.counting import UNKNOWN, Counted

TRANSFERS = ChainTransfer.__table__  # type: ignore[attr-defined]  # SQLModel tables have it


def insert(session: UnitOfWork, table: Any) -> Any:
    """The dialect's INSERT (both take ``on_conflict_do_nothing``)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# -- watcher state ------------------------------------------------------------------------


async def get_watcher(session: UnitOfWork, network: str) -> ChainWatcher | None:
    return await session.get(ChainWatcher, network)


async def ensure_watcher(session: UnitOfWork, network: str, chain_id: int) -> ChainWatcher:
    """The watcher row, created on first use (concurrent creators: one insert wins)."""
    watcher = await session.get(ChainWatcher, network)
    if watcher is not None:
        return watcher
    await session.execute(
        insert(session, ChainWatcher)
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


@dataclass(frozen=True, slots=True)
class CursorMove:
    """A run's cursor move, conditional on the cursor it started from (``expected``) and on
    the run still holding the lease (``owner``)."""

    network: str
    owner: str
    expected: int | None
    cursor: int
    head: int
    range_size: int
    good_ranges: int


async def move_cursor(session: UnitOfWork, move: CursorMove) -> bool:
    """False when the cursor moved under the run (an operator's rewind) or it lost its lease."""
    condition = (
        col(ChainWatcher.cursor).is_(None) if move.expected is None
        else col(ChainWatcher.cursor) == move.expected
    )
    result = await session.execute(
        update(ChainWatcher)
        .where(col(ChainWatcher.network) == move.network, condition,
               col(ChainWatcher.lease_owner) == move.owner)
        .values(cursor=move.cursor, head=move.head, range_size=move.range_size,
                good_ranges=move.good_ranges, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def count_reorg(session: UnitOfWork, network: str, fork_cursor: int) -> None:
    await session.execute(
        update(ChainWatcher)
        .where(col(ChainWatcher.network) == network)
        .values(reorgs=ChainWatcher.reorgs + 1, last_reorg_at=utcnow(),
                last_reorg_block=fork_cursor + 1)
    )


async def end_run(
    session: UnitOfWork, network: str, owner: str, now: datetime, next_run_at: datetime,
    *, error: str | None = None, failures: int = 0, failing_since: datetime | None = None,
) -> None:
    """Release the run's lease and schedule the next run: a success resets the failure count,
    a failure (``error``) records it."""
    values: dict[str, Any] = {
        "consecutive_failures": failures, "failing_since": failing_since,
        "next_run_at": next_run_at, "lease_owner": None, "lease_until": None, "updated_at": now,
    }
    if error is None:
        values["last_success_at"] = now
    else:
        values.update(last_error=error, last_error_at=now)
    await session.execute(
        update(ChainWatcher)
        .where(col(ChainWatcher.network) == network, col(ChainWatcher.lease_owner) == owner)
        .values(values)
    )


async def list_watchers(session: UnitOfWork) -> list[ChainWatcher]:
    rows = (await session.exec(select(ChainWatcher).order_by(col(ChainWatcher.network)))).all()
    return list(rows)


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


# -- remembered blocks --------------------------------------------------------------------


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
        insert(session, ChainBlock).values(
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


# -- transfers ----------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class TransferFilter:
    network: str | None = None
    status: str | None = None
    from_address: str | None = None
    to_address: str | None = None
    unmatched: bool | None = None
    agent_id: str | None = None
    tx_hash: str | None = None


def _lower(address: str | None) -> str | None:
    # An empty filter is no filter, as an absent one.
    return address.lower() if address else None


async def search(
    session: UnitOfWork, params: PageParams, where: TransferFilter
) -> tuple[list[ChainTransfer], str | None]:
    stmt = where_equal(
        select(ChainTransfer),
        (col(ChainTransfer.network), where.network or None),
        (col(ChainTransfer.status), where.status or None),
        (col(ChainTransfer.from_address), _lower(where.from_address)),
        (col(ChainTransfer.to_address), _lower(where.to_address)),
        (col(ChainTransfer.unmatched), where.unmatched),
        (col(ChainTransfer.agent_id), where.agent_id or None),
        (col(ChainTransfer.tx_hash), _lower(where.tx_hash)),
    )
    return await page(session, stmt, col(ChainTransfer.id), params)


async def get(session: UnitOfWork, transfer_id: str) -> ChainTransfer:
    return await get_or_404(session, ChainTransfer, transfer_id, "Transfer")


async def adopt(
    session: UnitOfWork, chain_id: int, tx_hash: str, log_index: int, counted: Counted
) -> str | None:
    """See ``app.transfers.service.adopt``."""
    t = TRANSFERS.c
    key = (t.chain_id == chain_id, t.tx_hash == tx_hash.lower(), t.log_index == log_index)
    # One conditional UPDATE: an operator's concurrent assign (which holds the pushed-transfer
    # lock alone, app.db.locks) wins or loses whole.
    result = await session.execute(
        update(TRANSFERS)
        .where(*key, t.status == CONFIRMED, t.purpose == UNKNOWN, t.unmatched.is_(True))
        .values(purpose=counted.purpose, unmatched=counted.unmatched,
                agent_id=counted.agent_id, reference=counted.reference, updated_at=utcnow())
    )
    if result.rowcount:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return counted.purpose
    row = (await session.execute(core_select(t.status, t.purpose).where(*key))).first()
    if row is None or row.status != CONFIRMED:
        return None
    return str(row.purpose)


async def counts_by_status(session: UnitOfWork, network: str) -> dict[str, int]:
    rows = await session.execute(
        select(ChainTransfer.status, func.count())
        .where(col(ChainTransfer.network) == network)
        .group_by(ChainTransfer.status)
    )
    return {str(status): int(count) for status, count in rows.all()}
