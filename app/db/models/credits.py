from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, micros


class LedgerEntry(SQLModel, table=True):
    """Append-only credit ledger; ``agents.balance_micros`` equals the sum per agent."""

    __tablename__ = "ledger_entries"

    id: str = Field(primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agents.id", index=True)
    # grant, deposit, charge, refund, adjustment, reversal
    kind: str = Field(max_length=12)
    amount_micros: int = micros()
    balance_after_micros: int = micros()
    reference: str | None = Field(default=None, max_length=120, index=True)
    # Makes a retried credit or charge a no-op.
    idempotency_key: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(160), unique=True, nullable=True)
    )
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_at()
