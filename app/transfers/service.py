"""The chain watchers' transfers and state, for operators and other areas.

The watcher's run (:func:`app.transfers.watcher.run_watcher`) is this area's one flow that
needs several transactions: it takes a lease, then checks for a reorg, stores each scanned
range with its cursor move, and counts what has its confirmations, each in a transaction of
its own (see its module docstring). What a confirmed transfer is for is not decided here: the
run is given a :class:`~app.transfers.counting.Counting` (``app.integrations.chain``).

Nothing here commits: the request (or the caller's unit of work) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.audit.service import Actor, record
from app.db.models.transfers import ChainTransfer, ChainWatcher
from app.db.paging import PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.settings import Settings
from app.transfers import repository
from app.transfers.counting import Counted
from app.transfers.repository import TransferFilter
from app.transfers.schemas import RewindView, WatcherView, watcher_view
from app.transfers.watch_config import start_block
from chain.networks import Network

__all__ = [
    "TransferFilter", "adopt", "counts_by_status", "get", "list_watchers", "rewind",
    "rewind_ceiling", "rewind_watcher", "search", "snapshot", "watcher_states", "watcher_views",
]


async def search(
    session: UnitOfWork, params: PageParams, where: TransferFilter
) -> tuple[list[ChainTransfer], str | None]:
    """Stored transfers newest first, filtered."""
    return await repository.search(session, params, where)


async def get(session: UnitOfWork, transfer_id: str) -> ChainTransfer:
    """One transfer, or NOT_FOUND."""
    return await repository.get(session, transfer_id)


def snapshot(transfer: ChainTransfer) -> dict[str, Any]:
    """What the audit log keeps of a transfer before/after an operator action."""
    return {
        "status": transfer.status,
        "purpose": transfer.purpose,
        "unmatched": transfer.unmatched,
        "agentId": transfer.agent_id,
        "ledgerEntryId": transfer.ledger_entry_id,
    }


async def adopt(
    session: UnitOfWork, chain_id: int, tx_hash: str, log_index: int, counted: Counted
) -> str | None:
    """Give a transfer the watcher already counted as unclaimed to ``counted``'s purpose (a
    pushed payment named after its transfer was counted), so a reorg reverses it through that
    purpose and an operator can no longer assign it.

    Returns the purpose the transfer now counts for, or None while it is not counted (stored
    pending, reorged, or not seen yet: the watcher's counting will claim it).
    """
    return await repository.adopt(session, chain_id, tx_hash, log_index, counted)


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
    locked = await repository.ensure_watcher(session, network, chain_id)
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
    await repository.forget_blocks(session, network, above=block - 1)
    await session.flush()
    return locked, before


async def list_watchers(session: UnitOfWork) -> list[ChainWatcher]:
    """Every watcher that has a state row, by network."""
    return await repository.list_watchers(session)


async def watcher_states(
    session: UnitOfWork, networks: Sequence[str]
) -> dict[str, ChainWatcher]:
    """The stored state of each named network's watcher (missing: never ran)."""
    return await repository.watcher_states(session, networks)


async def counts_by_status(session: UnitOfWork, network: str) -> dict[str, int]:
    """How many of a network's transfers are in each status."""
    return await repository.counts_by_status(session, network)


async def watcher_views(session: UnitOfWork, settings: Settings) -> list[WatcherView]:
    """Every enabled network's watcher, as operators see it."""
    networks = settings.networks()
    states = await repository.watcher_states(session, list(networks))
    now = utcnow()
    return [
        watcher_view(network, states.get(name), now, settings.chain_unhealthy_after_seconds)
        for name, network in networks.items()
    ]


def _network(settings: Settings, name: str) -> Network:
    network = settings.networks().get(name)
    if network is None:
        raise NotFound(f"No enabled network named {name!r}.")
    return network


async def rewind_watcher(
    session: UnitOfWork, settings: Settings, actor: Actor, network: str, block: int,
    reason: str,
) -> RewindView:
    """An operator's :func:`rewind` of an enabled network's watcher, audited."""
    found = _network(settings, network)
    state, previous = await rewind(session, found.name, found.chain_id, block,
                                   start_block=start_block(settings, found))
    await record(session, actor, "chain_watcher.rewind", "chain_watcher", found.name,
                 before={"cursor": previous}, after={"cursor": state.cursor, "reason": reason})
    view = watcher_view(found, state, utcnow(), settings.chain_unhealthy_after_seconds)
    return RewindView(watcher=view, previous_cursor=previous)
