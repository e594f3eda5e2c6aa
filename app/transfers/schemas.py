"""Wire shapes of transfers and chain watchers (admin API, health)."""

from __future__ import annotations

from typing import Annotated

import msgspec

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


class AssignBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    reason: Reason


class RewindBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    block: Annotated[int, msgspec.Meta(ge=0, le=2**62)]
    reason: Reason


class RewindView(msgspec.Struct, rename="camel"):
    watcher: WatcherView
    previous_cursor: int | None
