from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, micros, optional_micros, timestamp


class Agent(SQLModel, table=True):
    """An account that holds keys and credits: self-registered, signed up by email, or a
    platform's fleet member."""

    __tablename__ = "agents"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    email: str | None = Field(default=None, max_length=320, unique=True)
    platform_id: str | None = Field(default=None, foreign_key="platforms.id", index=True)
    disabled: bool = False
    plan: str = Field(default="free", max_length=20)
    claim_code_hash: str | None = Field(default=None, max_length=64, unique=True)
    claimed_at: datetime | None = timestamp()
    daily_spending_limit_micros: int | None = optional_micros()
    # Kept equal to the sum of the ledger in the same transaction as every entry.
    balance_micros: int = micros()
    spent_micros: int = micros()
    # Taken from the balance into open gateway credit leases (``app.gateway.leases``): not
    # spent yet, not available either. balance + held + spent = all ever credited.
    held_micros: int = micros()
    created_at: datetime = created_at()
