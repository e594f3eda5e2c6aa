"""What the chain watchers store: every USDC transfer to a receiving address, their cursors and
the block hashes they remember for reorg detection."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, timestamp

# Transfer lifecycle: ``pending`` (seen, not enough confirmations) -> ``confirmed`` (counted:
# credited, matched to a payment, or recorded as unmatched) -> ``reorged`` if its block leaves
# the canonical chain (whatever it caused is reversed). A reorged transfer that is mined again
# goes back to ``pending`` with ``epoch`` + 1.
PENDING = "pending"
CONFIRMED = "confirmed"
REORGED = "reorged"
TRANSFER_STATUSES = (PENDING, CONFIRMED, REORGED)


class ChainTransfer(SQLModel, table=True):
    """One ERC-20 ``Transfer`` log of USDC to one of the service's receiving addresses.

    Unique by (chain id, tx hash, log index): re-scans are no-ops. Addresses are lower-case hex
    so lookups need no normalisation.
    """

    __tablename__ = "chain_transfers"
    __table_args__ = (
        sa.UniqueConstraint("chain_id", "tx_hash", "log_index", name="uq_chain_transfers_log"),
        sa.Index("ix_chain_transfers_scan", "network", "status", "block_number"),
    )

    id: str = Field(primary_key=True, max_length=40)
    network: str = Field(max_length=20)
    chain_id: int
    tx_hash: str = Field(max_length=66)
    log_index: int
    block_number: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    block_hash: str = Field(max_length=66)
    from_address: str = Field(max_length=42, index=True)
    # Not indexed: every row has one of the few receiving addresses (migration 0007).
    to_address: str = Field(max_length=42)
    # The exact uint256 amount; ``amount_micros`` is the same number when it fits a BIGINT
    # (always for real USDC), else None and the transfer is never credited automatically.
    value: str = Field(max_length=78)
    amount_micros: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    status: str = Field(default=PENDING, max_length=10)
    # Set when confirmed: "deposit", "payment" (see app.integrations.chain), or "unknown".
    purpose: str | None = Field(default=None, max_length=16)
    # Confirmed, but nobody to credit: an unknown sender, or a transfer no purpose claimed.
    unmatched: bool = Field(default=False, index=True)
    agent_id: str | None = Field(default=None, foreign_key="agents.id", index=True)
    ledger_entry_id: str | None = Field(default=None, max_length=40)
    # What the transfer paid for, set by its purpose (e.g. a payment id); never searched by.
    reference: str | None = Field(default=None, max_length=120)
    # Times it was revived after a reorg; part of its ledger idempotency keys.
    epoch: int = 0
    seen_at: datetime = created_at()
    confirmed_at: datetime | None = timestamp()
    reorged_at: datetime | None = timestamp()
    # When the effects of a counted transfer were undone (reorg).
    reversed_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()


class ChainWatcher(SQLModel, table=True):
    """One network's watcher: cursor, adaptive range, health, and the run lease."""

    __tablename__ = "chain_watchers"

    network: str = Field(primary_key=True, max_length=20)
    chain_id: int
    # Highest block whose logs are stored; None until the first run picks a start block.
    cursor: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    head: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    # Current eth_getLogs range: halves on "range too large", doubles back after successes.
    range_size: int = 0
    good_ranges: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    last_error_at: datetime | None = timestamp()
    failing_since: datetime | None = timestamp()
    consecutive_failures: int = 0
    last_run_at: datetime | None = timestamp()
    last_success_at: datetime | None = timestamp()
    # Runs before this are no-ops (poll interval, backoff); also what the tick re-drives.
    next_run_at: datetime | None = timestamp()
    # Only the run holding the lease scans; a crashed run's lease simply expires.
    lease_owner: str | None = Field(default=None, max_length=40)
    lease_until: datetime | None = timestamp()
    reorgs: int = 0
    last_reorg_at: datetime | None = timestamp()
    last_reorg_block: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    updated_at: datetime | None = timestamp()


class ChainBlock(SQLModel, table=True):
    """A recently scanned block's hash (range ends and blocks holding transfers)."""

    __tablename__ = "chain_blocks"

    network: str = Field(primary_key=True, max_length=20)
    number: int = Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True))
    hash: str = Field(max_length=66)
