"""Wire shapes of transfers and chain watchers (admin API, health), and rows to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from eth_utils.address import to_checksum_address

from app.db.models.transfers import ChainTransfer, ChainWatcher
from app.db.types import rfc3339
from chain.networks import Network

# A watcher further behind than this many poll intervals' worth of blocks is "lagging".
_LAGGING_BLOCKS = 50

Reason = Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class TransferView(msgspec.Struct, rename="camel"):
    id: str
    network: str
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str = msgspec.field(name="from")
    to_address: str = msgspec.field(name="to")
    value: str = ""
    amount_micros: int | None = None
    status: str = ""
    purpose: str | None = None
    unmatched: bool = False
    agent_id: str | None = None
    ledger_entry_id: str | None = None
    reference: str | None = None
    epoch: int = 0
    seen_at: str = ""
    confirmed_at: str | None = None
    reorged_at: str | None = None
    reversed_at: str | None = None


class WatcherView(msgspec.Struct, rename="camel"):
    """One network's watcher. ``status``: ``starting`` (no run yet), ``ok``, ``lagging``
    (more than a poll's worth of blocks behind), ``failing`` (RPC errors, retrying),
    ``down`` (failing or not running for longer than the health threshold)."""

    network: str
    chain_id: int
    status: str
    head: int | None
    cursor: int | None
    lag: int | None
    confirmations: int
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    failing_since: str | None
    last_run_at: str | None
    last_success_at: str | None
    next_run_at: str | None
    range_size: int
    reorgs: int
    last_reorg_at: str | None
    last_reorg_block: int | None


class RewindBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    block: Annotated[int, msgspec.Meta(ge=0, le=2**62)]
    reason: Reason


class RewindView(msgspec.Struct, rename="camel"):
    watcher: WatcherView
    previous_cursor: int | None


def transfer_view(transfer: ChainTransfer) -> TransferView:
    return TransferView(
        id=transfer.id,
        network=transfer.network,
        chain_id=transfer.chain_id,
        tx_hash=transfer.tx_hash,
        log_index=transfer.log_index,
        block_number=transfer.block_number,
        block_hash=transfer.block_hash,
        from_address=to_checksum_address(transfer.from_address),
        to_address=to_checksum_address(transfer.to_address),
        value=transfer.value,
        amount_micros=transfer.amount_micros,
        status=transfer.status,
        purpose=transfer.purpose,
        unmatched=transfer.unmatched,
        agent_id=transfer.agent_id,
        ledger_entry_id=transfer.ledger_entry_id,
        reference=transfer.reference,
        epoch=transfer.epoch,
        seen_at=rfc3339(transfer.seen_at) or "",
        confirmed_at=rfc3339(transfer.confirmed_at),
        reorged_at=rfc3339(transfer.reorged_at),
        reversed_at=rfc3339(transfer.reversed_at),
    )


def watcher_status(
    state: ChainWatcher | None, now: datetime, unhealthy_after_seconds: float
) -> str:
    if state is not None and state.consecutive_failures:
        since = state.failing_since or now
        return "down" if (now - since).total_seconds() > unhealthy_after_seconds else "failing"
    if state is None or state.cursor is None:
        return "starting"
    last = state.last_success_at or state.last_run_at
    if last is None or (now - last).total_seconds() > unhealthy_after_seconds:
        return "down"  # nothing has run it lately: the worker or the scheduler is gone
    if state.head is not None and state.head - state.cursor > _LAGGING_BLOCKS:
        return "lagging"
    return "ok"


def watcher_view(
    network: Network, state: ChainWatcher | None, now: datetime, unhealthy_after_seconds: float
) -> WatcherView:
    head = state.head if state else None
    cursor = state.cursor if state else None
    return WatcherView(
        network=network.name,
        chain_id=network.chain_id,
        status=watcher_status(state, now, unhealthy_after_seconds),
        head=head,
        cursor=cursor,
        lag=max(head - cursor, 0) if head is not None and cursor is not None else None,
        confirmations=network.confirmations,
        last_error=state.last_error if state else None,
        last_error_at=rfc3339(state.last_error_at) if state else None,
        consecutive_failures=state.consecutive_failures if state else 0,
        failing_since=rfc3339(state.failing_since) if state else None,
        last_run_at=rfc3339(state.last_run_at) if state else None,
        last_success_at=rfc3339(state.last_success_at) if state else None,
        next_run_at=rfc3339(state.next_run_at) if state else None,
        range_size=(state.range_size if state else 0) or network.max_log_range,
        reorgs=state.reorgs if state else 0,
        last_reorg_at=rfc3339(state.last_reorg_at) if state else None,
        last_reorg_block=state.last_reorg_block if state else None,
    )
