from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, timestamp


class Wallet(SQLModel, table=True):
    """An address an agent proved it controls; USDC it sends to the deposit address is credited."""

    __tablename__ = "wallets"

    id: str = Field(primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agents.id", index=True)
    # Lower-case hex, so lookups from chain logs need no normalisation; one agent per address.
    address: str = Field(max_length=42, unique=True)
    created_at: datetime = created_at()


class WalletChallenge(SQLModel, table=True):
    """A one-time message the agent signs (EIP-191) to prove control of an address."""

    __tablename__ = "wallet_challenges"

    id: str = Field(primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agents.id", index=True)
    address: str = Field(max_length=42)
    nonce: str = Field(max_length=64, unique=True)
    message: str = Field(max_length=1000)
    expires_at: datetime = timestamp()
    used_at: datetime | None = timestamp()
    created_at: datetime = created_at()
