from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, json_column, micros, timestamp


class Payment(SQLModel, table=True):
    """One x402 payment (a "challenge" answered): what was bought, with what, and its fate.

    The unique indexes on (network, authorization nonce) and, for pushed payments, (network,
    tx hash) are what make a payment unable to buy twice, whatever the number of API processes
    racing with it. A signed payment's ``tx_hash`` only says which transaction settled it: one
    transaction may spend several authorizations (a contract batching them), and a pushed
    payment that named a signed payment's transaction keeps the hash after it lost it.
    """

    __tablename__ = "payments"
    __table_args__ = (
        sa.UniqueConstraint("network", "auth_nonce", name="uq_payments_network_nonce"),
        sa.Index("uq_payments_network_push_tx", "network", "tx_hash", unique=True,
                 postgresql_where=sa.text("scheme = 'push'"),
                 sqlite_where=sa.text("scheme = 'push'")),
        sa.Index("ix_payments_network_tx", "network", "tx_hash"),
        # One payment per x402 payment-identifier, whoever presents it (app.payments.identifiers).
        sa.UniqueConstraint("payment_identifier", name="uq_payments_identifier"),
        # The results still kept for replays, by when their window closes (the purge's scan).
        sa.Index("ix_payments_kept_results", "result_expires_at",
                 postgresql_where=sa.text("result_sealed IS NOT NULL"),
                 sqlite_where=sa.text("result_sealed IS NOT NULL")),
    )

    id: str = Field(primary_key=True, max_length=40)
    purpose: str = Field(max_length=20, index=True)  # pass, gateway
    # "<METHOD> /v1/gateway/<provider><path>" at its longest (app.gateway.incoming bounds the path).
    resource: str = Field(max_length=2200)
    # sha256 of what was bought with which payment: an identical retry replays the outcome.
    fingerprint: str = Field(max_length=64, index=True)
    network: str = Field(max_length=40, index=True)
    scheme: str = Field(max_length=10)  # exact (EIP-3009), upto (Permit2) or push (tx hash)
    x402_version: int | None = None
    payer: str = Field(max_length=42, index=True)
    pay_to: str = Field(max_length=42)
    amount_micros: int = micros()
    # ``upto``: the most the client authorized (``amount_micros`` is then what it is charged,
    # set once the usage is known). NULL for the other schemes.
    authorized_micros: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    auth_nonce: str | None = Field(default=None, max_length=66)
    tx_hash: str | None = Field(default=None, max_length=66)
    # The signed EIP-3009 authorization the settlement signer submits.
    authorization: dict[str, Any] | None = json_column(nullable=True)
    valid_before: datetime | None = timestamp()
    status: str = Field(default="pending", max_length=12, index=True)
    failure_reason: str | None = Field(default=None, max_length=500)
    agent_id: str | None = Field(default=None, max_length=40, index=True)
    claim_token_hash: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = timestamp()
    fulfilled_at: datetime | None = timestamp()
    result_key_id: str | None = Field(default=None, max_length=40)
    # The response body sealed (AES-GCM) for the replay window, then dropped
    # (``expire_payments``).
    result_sealed: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    result_expires_at: datetime | None = timestamp()
    settled_at: datetime | None = timestamp()
    # The client's x402 ``payment-identifier`` (idempotency key) and the hash of the terms it
    # was bound to: a retry with the same id must be the same payer buying the same thing.
    payment_identifier: str | None = Field(default=None, max_length=128)
    identifier_terms: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at()
    updated_at: datetime | None = timestamp()
