from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, optional_micros


class Platform(SQLModel, table=True):
    """A customer that runs a fleet of agents with master keys (a tenant)."""

    __tablename__ = "platforms"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    daily_spending_limit_micros: int | None = optional_micros()
    disabled: bool = False
    created_at: datetime = created_at()
