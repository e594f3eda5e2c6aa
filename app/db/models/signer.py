"""The settlement signer's records: what it was asked to submit, every transaction it signed
(recorded before broadcasting), and its nonce counter per chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, timestamp

# Submission lifecycle. ``queued``: accepted, nothing signed. ``signed``: a transaction with a
# nonce is recorded (it may or may not have reached a node). ``broadcast``: a node accepted it.
# Final: ``mined`` (the transfer happened, with the network's confirmations), ``reverted``
# (mined but failed), ``already_used`` (the authorization was used by someone else or by an
# earlier submission: nothing to do), ``expired`` (its window closed before it could be mined),
# ``failed`` (refused before any nonce was spent: bad signature, insufficient balance...).
QUEUED = "queued"
SIGNED = "signed"
BROADCAST = "broadcast"
MINED = "mined"
REVERTED = "reverted"
ALREADY_USED = "already_used"
EXPIRED = "expired"
FAILED = "failed"
OPEN_STATUSES = (QUEUED, SIGNED, BROADCAST)
FINAL_STATUSES = (MINED, REVERTED, ALREADY_USED, EXPIRED, FAILED)


class SettlementSubmission(SQLModel, table=True):
    """One request to settle a verified EIP-3009 authorization on chain."""

    __tablename__ = "settlement_submissions"
    __table_args__ = (
        sa.Index("ix_settlement_submissions_authorization", "chain_id", "authorizer",
                 "auth_nonce"),
    )

    id: str = Field(primary_key=True, max_length=40)
    network: str = Field(max_length=20)
    chain_id: int
    # What the settlement is for (e.g. a payment id); a repeated request returns the same row.
    purpose_ref: str = Field(max_length=120, unique=True)
    signer: str = Field(max_length=42)
    authorizer: str = Field(max_length=42)
    recipient: str = Field(max_length=42)
    value: str = Field(max_length=78)
    valid_after: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    valid_before: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    auth_nonce: str = Field(max_length=66)
    signature: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    # An x402 ``upto`` settlement (``app.signer.upto``): the Permit2 terms the client signed
    # ({"token", "maxAmount", "facilitator"}); ``value`` is then the amount to settle (at most
    # maxAmount), ``auth_nonce`` the Permit2 nonce, ``valid_before`` its deadline. NULL for an
    # EIP-3009 authorization.
    permit2: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(),
                                                                             nullable=True))
    status: str = Field(default=QUEUED, max_length=16, index=True)
    tx_nonce: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    # The transaction that was mined (final), else the latest one signed.
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    duplicate_of: str | None = Field(default=None, max_length=40)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # The sweeper re-drives open submissions whose next step is due (lost messages, crashes).
    next_attempt_at: datetime | None = timestamp(index=True)
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()
    completed_at: datetime | None = timestamp()


class SettlementTransaction(SQLModel, table=True):
    """A signed transaction, stored before it is broadcast so a crash never signs a second one
    for the same nonce: the same raw bytes are re-broadcast instead. Replacements of a stuck
    transaction are further rows with the same nonce and higher fees."""

    __tablename__ = "settlement_transactions"
    __table_args__ = (sa.Index("ix_settlement_transactions_nonce", "chain_id", "signer",
                               "nonce"),)

    id: str = Field(primary_key=True, max_length=40)
    submission_id: str = Field(foreign_key="settlement_submissions.id", index=True)
    chain_id: int
    signer: str = Field(max_length=42)
    nonce: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    tx_hash: str = Field(max_length=66, unique=True)
    raw_tx: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    # "settle" (transferWithAuthorization), or a 0-value self-transfer that frees a nonce:
    # "cancel" when its authorization expired, "release" when no node would take the settle.
    kind: str = Field(default="settle", max_length=8)
    max_fee_per_gas: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    max_priority_fee_per_gas: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    gas_limit: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    created_at: datetime = created_at()
    broadcast_at: datetime | None = timestamp()


class SignerState(SQLModel, table=True):
    """The signer's next nonce on one chain. Its row is the signer lock: every nonce allocation
    starts with an UPDATE of this row (a row lock in PostgreSQL, the write lock in SQLite)."""

    __tablename__ = "signer_states"

    chain_id: int = Field(primary_key=True)
    address: str = Field(primary_key=True, max_length=42)
    next_nonce: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    synced_at: datetime | None = timestamp()
    updated_at: datetime | None = timestamp()
